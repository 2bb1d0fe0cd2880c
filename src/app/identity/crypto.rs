//! Secrets: argon2id password hashing on a bounded blocking pool, random tokens and their hashes.

use crate::config::Argon2Params;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use tokio::sync::Semaphore;
use tracing::Instrument as _;

/// Hashes and verifies passwords with argon2id. At most one hash per core runs at a time,
/// so a burst of logins queues here instead of starving the runtime's blocking pool.
#[derive(Clone)]
pub struct PasswordHasher {
    params: Argon2Params,
    permits: Arc<Semaphore>,
    /// A hash of a random password, verified for unknown users so they cost the same time.
    dummy: Arc<tokio::sync::OnceCell<String>>,
}

/// The result of checking a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    No,
    Yes,
    /// Correct, and the stored hash used weaker parameters: here is its replacement.
    YesRehashed(String),
}

impl PasswordHasher {
    pub fn new(params: Argon2Params) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            params,
            permits: Arc::new(Semaphore::new(cores)),
            dummy: Default::default(),
        }
    }

    fn argon2(params: Argon2Params) -> Argon2<'static> {
        let params = Params::new(params.m_kib, params.t, params.p, None)
            .expect("parameters validated by config");
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let _permit = self.permits.acquire().await?;
        let span = tracing::Span::current();
        Ok(tokio::task::spawn_blocking(move || span.in_scope(work))
            .instrument(tracing::Span::current())
            .await?)
    }

    pub async fn hash(&self, secret: &str) -> anyhow::Result<String> {
        let secret = secret.to_owned();
        let params = self.params;
        self.blocking(move || {
            let salt =
                SaltString::encode_b64(&random_bytes::<16>()).expect("16 bytes is a valid salt");
            Self::argon2(params)
                .hash_password(secret.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))
        })
        .await?
    }

    /// Verifies `secret` against `stored`; `None` (no such user or no password yet) still
    /// costs one verification against a dummy hash.
    pub async fn verify(&self, secret: &str, stored: Option<&str>) -> anyhow::Result<Verified> {
        let dummy = self
            .dummy
            .get_or_try_init(|| async {
                let seed = hex::encode(random_bytes::<16>());
                self.hash(&seed).await
            })
            .await?
            .clone();
        let is_real = stored.is_some();
        let stored = stored.map_or(dummy, str::to_owned);
        let secret = secret.to_owned();
        let params = self.params;
        self.blocking(move || {
            let Ok(parsed) = PasswordHash::new(&stored) else {
                return Ok(Verified::No);
            };
            if Self::argon2(params)
                .verify_password(secret.as_bytes(), &parsed)
                .is_err()
                || !is_real
            {
                return Ok(Verified::No);
            }
            let current = Params::try_from(&parsed)
                .ok()
                .map(|p| (p.m_cost(), p.t_cost(), p.p_cost()));
            if parsed.algorithm.as_str() == "argon2id"
                && current == Some((params.m_kib, params.t, params.p))
            {
                return Ok(Verified::Yes);
            }
            let salt =
                SaltString::encode_b64(&random_bytes::<16>()).expect("16 bytes is a valid salt");
            let upgraded = Self::argon2(params)
                .hash_password(secret.as_bytes(), &salt)
                .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))?;
            Ok(Verified::YesRehashed(upgraded.to_string()))
        })
        .await?
    }
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

/// A new opaque token (256 random bits, URL-safe) and the hash under which it is stored.
pub fn new_token() -> (String, Vec<u8>) {
    use base64::Engine as _;
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>());
    let hash = token_hash(&token);
    (token, hash)
}

pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: Argon2Params = Argon2Params {
        m_kib: 64,
        t: 1,
        p: 1,
    };

    #[tokio::test]
    async fn hashes_verify_and_weaker_ones_are_upgraded() {
        let hasher = PasswordHasher::new(CHEAP);
        let hash = hasher.hash("correct horse battery").await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert_eq!(
            hasher
                .verify("correct horse battery", Some(&hash))
                .await
                .unwrap(),
            Verified::Yes
        );
        assert_eq!(
            hasher.verify("wrong", Some(&hash)).await.unwrap(),
            Verified::No
        );

        let stronger = PasswordHasher::new(Argon2Params {
            m_kib: 128,
            t: 1,
            p: 1,
        });
        match stronger
            .verify("correct horse battery", Some(&hash))
            .await
            .unwrap()
        {
            Verified::YesRehashed(new) => assert!(new.contains("m=128")),
            other => panic!("expected a rehash, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn unknown_users_never_verify() {
        let hasher = PasswordHasher::new(CHEAP);
        assert_eq!(hasher.verify("anything", None).await.unwrap(), Verified::No);
    }

    #[test]
    fn tokens_are_256_bits_and_hashed() {
        let (token, hash) = new_token();
        assert_eq!(token.len(), 43);
        assert_eq!(hash, token_hash(&token));
        assert_ne!(new_token().0, token);
    }
}
