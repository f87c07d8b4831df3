//! Time as the protocol counts it: whole seconds since the Unix epoch (RFC 7519 NumericDate).

/// Unix time in seconds.
pub type Timestamp = i64;

pub fn now() -> Timestamp {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}
