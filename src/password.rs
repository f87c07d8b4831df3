//! Password hashing with Argon2id at the argon2 crate's defaults (m=19 MiB, t=2, p=1: the OWASP
//! minimum), on the blocking pool so hashing never stalls the async workers.

use std::sync::OnceLock;

use tokio::sync::Semaphore;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

/// The longest password accepted; longer input is refused before hashing (cost control).
pub const MAX_PASSWORD_LEN: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password must be 8 to 1024 characters")]
    Length,
    #[error("password hashing failed")]
    Hashing,
}

/// Each Argon2 computation holds 19 MiB; without a bound, a burst of logins would hold that much per
/// request in flight (a memory DoS). One at a time per core keeps memory flat and loses no throughput.
async fn hashing_permit() -> tokio::sync::SemaphorePermit<'static> {
    static PERMITS: OnceLock<Semaphore> = OnceLock::new();
    let permits = PERMITS.get_or_init(|| Semaphore::new(std::thread::available_parallelism().map_or(1, |n| n.get())));
    permits.acquire().await.expect("the semaphore is never closed")
}

pub async fn hash(password: String) -> Result<String, PasswordError> {
    if password.chars().count() < 8 || password.len() > MAX_PASSWORD_LEN {
        return Err(PasswordError::Length);
    }
    let _permit = hashing_permit().await;
    tokio::task::spawn_blocking(move || hash_blocking(&password)).await.map_err(|_| PasswordError::Hashing)?
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
    let _permit = hashing_permit().await;
    tokio::task::spawn_blocking(move || {
        let (hash, real) = match &stored {
            Some(h) => (h.as_str(), true),
            None => (dummy_hash(), false),
        };
        let ok = Argon2::default().verify_password(password.as_bytes(), hash).is_ok();
        ok && real
    })
    .await
    .unwrap_or(false)
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
        assert!(hash("short".into()).await.is_err());
    }
}
