//! Secrets: argon2id password hashing on threads of its own, random tokens and their hashes.

use crate::config::Argon2Params;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex, mpsc};

/// A hash or verification waiting for a hashing thread.
type Job = Box<dyn FnOnce() + Send>;

/// Hashes and verifies passwords with argon2id on one thread per core, fed from one queue:
/// a burst of logins waits there instead of starving the runtime, and a thread that
/// finishes a hash takes the next one at once (no hand-over through the runtime between
/// them). The threads end when the last clone of the hasher is dropped.
#[derive(Clone)]
pub struct PasswordHasher {
    params: Argon2Params,
    jobs: mpsc::Sender<Job>,
    /// A hash of a random password, verified for unknown users so they cost the same time.
    dummy: Arc<tokio::sync::OnceCell<String>>,
}

/// Whether a verification is still wanted: not past its deadline, and its client still
/// waiting for the answer.
#[derive(Debug, Clone)]
pub struct Wanted {
    pub by: std::time::Instant,
    pub client_gone: Arc<std::sync::atomic::AtomicBool>,
}

impl Wanted {
    fn no_longer(&self) -> bool {
        std::time::Instant::now() > self.by
            || self.client_gone.load(std::sync::atomic::Ordering::Relaxed)
    }
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
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..cores {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("argon2id-{n}"))
                .spawn(move || {
                    // Holding the lock while waiting is the point: the other threads queue
                    // behind it and each job goes to exactly one thread.
                    while let Ok(job) = queue
                        .lock()
                        .map_err(drop)
                        .and_then(|q| q.recv().map_err(drop))
                    {
                        job();
                    }
                })
                .expect("the password hashing threads start");
        }
        Self {
            params,
            jobs,
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
        let (done, result) = tokio::sync::oneshot::channel();
        let span = tracing::Span::current();
        let job = move || {
            // The caller went away while it waited (a client that hung up): no hash.
            if done.is_closed() {
                return;
            }
            // A panic drops `done`: the caller gets an error and the thread lives on.
            if let Ok(value) =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| span.in_scope(work)))
            {
                let _ = done.send(value);
            }
        };
        self.jobs
            .send(Box::new(job))
            .map_err(|_| anyhow::anyhow!("the password hashing threads have stopped"))?;
        result
            .await
            .map_err(|_| anyhow::anyhow!("password hashing failed"))
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
        Ok(self
            .verify_by(secret, stored, None)
            .await?
            .unwrap_or(Verified::No))
    }

    /// Like `verify`, but `None` when the verification was no longer wanted by the time a
    /// hashing thread could start on it: then nothing was verified.
    pub async fn verify_by(
        &self,
        secret: &str,
        stored: Option<&str>,
        wanted: Option<Wanted>,
    ) -> anyhow::Result<Option<Verified>> {
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
            if wanted.as_ref().is_some_and(Wanted::no_longer) {
                return Ok(None);
            }
            let Ok(parsed) = PasswordHash::new(&stored) else {
                return Ok(Some(Verified::No));
            };
            if Self::argon2(params)
                .verify_password(secret.as_bytes(), &parsed)
                .is_err()
                || !is_real
            {
                return Ok(Some(Verified::No));
            }
            let current = Params::try_from(&parsed)
                .ok()
                .map(|p| (p.m_cost(), p.t_cost(), p.p_cost()));
            if parsed.algorithm.as_str() == "argon2id"
                && current == Some((params.m_kib, params.t, params.p))
            {
                return Ok(Some(Verified::Yes));
            }
            let salt =
                SaltString::encode_b64(&random_bytes::<16>()).expect("16 bytes is a valid salt");
            let upgraded = Self::argon2(params)
                .hash_password(secret.as_bytes(), &salt)
                .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))?;
            Ok(Some(Verified::YesRehashed(upgraded.to_string())))
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
    async fn nothing_is_verified_past_its_deadline_or_once_its_client_left() {
        let hasher = PasswordHasher::new(CHEAP);
        let hash = hasher.hash("correct horse battery").await.unwrap();
        let now = std::time::Instant::now();
        let wanted = |by, gone| {
            Some(Wanted {
                by,
                client_gone: Arc::new(std::sync::atomic::AtomicBool::new(gone)),
            })
        };
        let later = now + std::time::Duration::from_secs(60);
        for (by, gone, expected) in [
            (now, false, None),
            (later, true, None),
            (later, false, Some(Verified::Yes)),
        ] {
            let verified = hasher
                .verify_by("correct horse battery", Some(&hash), wanted(by, gone))
                .await
                .unwrap();
            assert_eq!(verified, expected);
        }
    }

    #[tokio::test]
    async fn unknown_users_never_verify() {
        let hasher = PasswordHasher::new(CHEAP);
        assert_eq!(hasher.verify("anything", None).await.unwrap(), Verified::No);
    }

    #[tokio::test]
    async fn a_job_whose_caller_went_away_is_skipped_and_a_panic_spares_the_threads() {
        let hasher = PasswordHasher::new(CHEAP);
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        // Every thread busy until released.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let held = Arc::new(Mutex::new(held));
        let (started, mut running) = tokio::sync::mpsc::unbounded_channel();
        let busy: Vec<_> = (0..cores)
            .map(|_| {
                let (held, started) = (held.clone(), started.clone());
                let hasher = hasher.clone();
                tokio::spawn(async move {
                    hasher
                        .blocking(move || {
                            started.send(()).unwrap();
                            held.lock().unwrap().recv().unwrap();
                        })
                        .await
                })
            })
            .collect();
        for _ in 0..cores {
            running.recv().await.unwrap();
        }
        // Queued behind them, then abandoned by its caller.
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = ran.clone();
        let abandoned =
            hasher.blocking(move || flag.store(true, std::sync::atomic::Ordering::SeqCst));
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), abandoned)
                .await
                .is_err()
        );
        for _ in 0..cores {
            release.send(()).unwrap();
        }
        for task in busy {
            task.await.unwrap().unwrap();
        }
        let panicked = hasher.blocking(|| panic!("a hash that fails")).await;
        assert!(panicked.is_err());
        // Every thread still takes work, in order behind what was queued before.
        for _ in 0..=cores {
            assert!(hasher.hash("correct horse battery").await.is_ok());
        }
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[test]
    fn tokens_are_256_bits_and_hashed() {
        let (token, hash) = new_token();
        assert_eq!(token.len(), 43);
        assert_eq!(hash, token_hash(&token));
        assert_ne!(new_token().0, token);
    }
}
