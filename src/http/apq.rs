//! Automatic persisted queries (the protocol of Apollo's clients): a client may send a
//! document's SHA-256 in `extensions.persistedQuery` instead of the document; a hash this
//! node has not seen answers `PersistedQueryNotFound`, and the client sends the document
//! with its hash once, which is checked and kept. The cache is bounded in entries and in
//! bytes, oldest out first; each node keeps its own (a miss only costs a retry).

use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

const MAX_ENTRIES: usize = 20_000;
const MAX_BYTES: usize = 32 * 1024 * 1024;

#[derive(Default)]
pub struct PersistedQueries {
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    documents: HashMap<[u8; 32], Arc<str>>,
    order: VecDeque<[u8; 32]>,
    bytes: usize,
}

/// What became of a request's persisted-query extension.
pub enum Persisted {
    /// The request holds its document (sent, or found by its hash), or used no hash.
    Ready,
    Refused {
        code: &'static str,
        message: &'static str,
    },
}

impl PersistedQueries {
    pub fn resolve(&self, request: &mut async_graphql::Request) -> Persisted {
        use async_graphql::Value;
        let Some(extension) = request.extensions.get("persistedQuery") else {
            return Persisted::Ready;
        };
        let field = |name: &str| match extension {
            Value::Object(map) => map.get(name).cloned(),
            _ => None,
        };
        let version = match field("version") {
            Some(Value::Number(n)) => n.as_i64(),
            _ => None,
        };
        if version != Some(1) {
            return Persisted::Refused {
                code: "PERSISTED_QUERY_NOT_SUPPORTED",
                message: "PersistedQueryNotSupported",
            };
        }
        let hash = match field("sha256Hash") {
            Some(Value::String(text)) => {
                let mut hash = [0u8; 32];
                hex::decode_to_slice(&text, &mut hash).ok().map(|()| hash)
            }
            _ => None,
        };
        let Some(hash) = hash else {
            return Persisted::Refused {
                code: "BAD_REQUEST",
                message: "persistedQuery.sha256Hash must be 64 hexadecimal digits.",
            };
        };
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if request.query.is_empty() {
            return match cache.documents.get(&hash) {
                Some(document) => {
                    request.query = document.to_string();
                    Persisted::Ready
                }
                None => Persisted::Refused {
                    code: "PERSISTED_QUERY_NOT_FOUND",
                    message: "PersistedQueryNotFound",
                },
            };
        }
        if Sha256::digest(request.query.as_bytes()).as_slice() != hash {
            return Persisted::Refused {
                code: "BAD_REQUEST",
                message: "provided sha does not match query",
            };
        }
        cache.keep(hash, &request.query);
        Persisted::Ready
    }
}

impl Cache {
    fn keep(&mut self, hash: [u8; 32], document: &str) {
        if self.documents.contains_key(&hash) || document.len() > MAX_BYTES / 16 {
            return;
        }
        while self.documents.len() >= MAX_ENTRIES || self.bytes + document.len() > MAX_BYTES {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(gone) = self.documents.remove(&oldest) {
                self.bytes -= gone.len();
            }
        }
        self.bytes += document.len();
        self.order.push_back(hash);
        self.documents.insert(hash, Arc::from(document));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_stays_within_its_bounds() {
        let mut cache = Cache::default();
        let document = "x".repeat(MAX_BYTES / 20);
        for i in 0..100u8 {
            cache.keep([i; 32], &document);
        }
        assert!(cache.bytes <= MAX_BYTES);
        assert_eq!(cache.documents.len(), 20);
        assert!(cache.documents.contains_key(&[99; 32]));
        assert!(!cache.documents.contains_key(&[0; 32]));
    }
}
