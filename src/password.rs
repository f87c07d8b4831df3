//! Password hashing with Argon2id at the argon2 crate's defaults (m=19 MiB, t=2, p=1: the OWASP
//! minimum), on a few dedicated threads so hashing never stalls the async workers.

use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::oneshot;

use std::cell::RefCell;

use argon2::password_hash::PasswordHasher;
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};

use crate::crypto;

/// The longest password accepted; longer input is refused before hashing (cost control).
pub const MAX_PASSWORD_LEN: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password must be 8 to 1024 characters")]
    Length,
    #[error("password hashing failed")]
    Hashing,
}

type Job = Box<dyn FnOnce() + Send>;

/// Runs `work` on one of a fixed set of hashing threads, one per core. Each Argon2 computation holds
/// 19 MiB: a fixed set bounds both the memory in use and the memory the allocator keeps per thread
/// (a burst of logins on the general blocking pool grew the process by 19 MiB per thread it touched),
/// and loses no throughput, as hashing is CPU-bound.
async fn on_hashing_thread<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    static QUEUE: OnceLock<Mutex<Sender<Job>>> = OnceLock::new();
    let queue = QUEUE.get_or_init(|| {
        let (tx, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..std::thread::available_parallelism().map_or(1, |n| n.get()) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new().name(format!("oxid-hash-{i}")).spawn(move || {
                loop {
                    let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    match job {
                        Ok(job) => job(),
                        Err(_) => break,
                    }
                }
            });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a hashing thread");
            }
        }
        Mutex::new(tx)
    });
    let (done, result) = oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = done.send(work());
    });
    queue.lock().unwrap_or_else(|e| e.into_inner()).send(job).ok()?;
    result.await.ok()
}

/// Whether `password` is of an acceptable length (8 characters to `MAX_PASSWORD_LEN` bytes).
pub fn check_length(password: &str) -> Result<(), PasswordError> {
    if password.chars().count() < 8 || password.len() > MAX_PASSWORD_LEN {
        return Err(PasswordError::Length);
    }
    Ok(())
}

pub async fn hash(password: String) -> Result<String, PasswordError> {
    check_length(&password)?;
    on_hashing_thread(move || hash_blocking(&password)).await.ok_or(PasswordError::Hashing)?
}

fn hash_blocking(password: &str) -> Result<String, PasswordError> {
    Argon2::default().hash_password(password.as_bytes()).map(|h| h.to_string()).map_err(|_| PasswordError::Hashing)
}

/// Checks `password` against `stored`; with `stored` None (unknown user) a dummy hash is checked so
/// the answer takes as long either way (no user enumeration by timing).
pub async fn verify(password: String, stored: Option<String>) -> bool {
    if password.len() > MAX_PASSWORD_LEN {
        return false;
    }
    on_hashing_thread(move || {
        let (hash, real) = match &stored {
            Some(h) => (h.as_str(), true),
            None => (dummy_hash(), false),
        };
        verify_blocking(password.as_bytes(), hash) && real
    })
    .await
    .unwrap_or(false)
}

/// Verifies against a PHC string, computing into this thread's reusable Argon2 memory rather than a
/// fresh 19 MiB allocation per login (which the allocator kept, growing the process with every login).
fn verify_blocking(password: &[u8], stored: &str) -> bool {
    thread_local! {
        static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
    }
    let Ok(phc) = PasswordHash::new(stored) else { return false };
    let (Ok(params), Ok(algorithm)) = (Params::try_from(&phc), Algorithm::new(phc.algorithm.as_str())) else {
        return false;
    };
    let version = phc.version.map_or(Ok(Version::default()), Version::try_from);
    let (Ok(version), Some(salt), Some(expected)) = (version, &phc.salt, &phc.hash) else { return false };
    let mut out = vec![0u8; expected.as_bytes().len()];
    let blocks = params.block_count();
    let argon2 = Argon2::new(algorithm, version, params);
    MEMORY.with_borrow_mut(|memory| {
        if memory.len() < blocks {
            memory.resize(blocks, Block::default());
        }
        argon2.hash_password_into_with_memory(password, salt.as_ref(), &mut out, &mut memory[..blocks]).is_ok()
    }) && crypto::constant_time_eq(&out, expected.as_bytes())
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_blocking("oxid-dummy-password").expect("argon2 hashes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify() {
        let h = hash("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse".into(), Some(h.clone())).await);
        assert!(!verify("wrong horse!".into(), Some(h)).await);
        assert!(!verify("oxid-dummy-password".into(), None).await);
        assert!(matches!(hash("short".into()).await, Err(PasswordError::Length)));
    }
}
