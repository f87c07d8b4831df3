//! Time as the protocol counts it: whole seconds since the Unix epoch (RFC 7519 NumericDate).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Unix time in seconds.
pub type Timestamp = i64;

/// The system clock.
pub fn now() -> Timestamp {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// The clock a server judges expiry by: the system clock, or one that can be moved forward (tests of
/// expiry then need no sleeping). Clones share the offset, so the nodes of a test cluster agree.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset: Option<Arc<AtomicI64>>,
}

impl Clock {
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock that starts at the system time and moves on with it, plus what `advance` adds.
    pub fn adjustable() -> Self {
        Self { offset: Some(Arc::new(AtomicI64::new(0))) }
    }

    pub fn now(&self) -> Timestamp {
        now() + self.offset.as_ref().map_or(0, |o| o.load(Ordering::Relaxed))
    }

    /// Moves an adjustable clock `seconds` forward; the system clock cannot be moved.
    pub fn advance(&self, seconds: i64) {
        let offset = self.offset.as_ref().expect("only an adjustable clock is moved");
        offset.fetch_add(seconds, Ordering::Relaxed);
    }
}
