//! A per-node read-through cache of records that are read on every request and seldom change (clients,
//! resource servers).
//!
//! Nodes share no memory, so a change made elsewhere (another node, the CLI) reaches this node when its
//! entry expires: within the configured `record_cache_ttl`. A change made through this node forgets
//! the entry at once. Only found records are kept, so unknown keys cannot fill it; at capacity the
//! expired entries go first, then everything (it refills from the store).
//!
//! Written here rather than taken from a caching crate: it is a map under a mutex with a deadline per
//! entry, and the crates that do more (eviction policies, background threads) bring far more code.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use crate::model::Timestamp;

/// Entries kept at most, per cache.
const CAPACITY: usize = 10_000;

/// Entries with the second they expire at, by the server's clock (which tests can move).
pub struct TtlCache<K, V> {
    ttl: i64,
    entries: Mutex<HashMap<K, (Timestamp, Arc<V>)>>,
}

impl<K: Eq + Hash, V> TtlCache<K, V> {
    /// A cache whose entries live `ttl` seconds; a zero `ttl` keeps nothing.
    pub fn new(ttl: i64) -> Self {
        Self { ttl, entries: Mutex::new(HashMap::new()) }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<K, (Timestamp, Arc<V>)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The entry for `key` if it is still live at `now`.
    pub fn get<Q>(&self, key: &Q, now: Timestamp) -> Option<Arc<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let entries = self.entries();
        let (expires, value) = entries.get(key)?;
        (now < *expires).then(|| Arc::clone(value))
    }

    pub fn insert(&self, key: K, value: Arc<V>, now: Timestamp) {
        if self.ttl <= 0 {
            return;
        }
        let mut entries = self.entries();
        if entries.len() >= CAPACITY {
            entries.retain(|_, (expires, _)| now < *expires);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(key, (now + self.ttl, value));
    }

    /// Drops the entry for `key` (after a change made through this node).
    pub fn forget<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries().remove(key);
    }

    /// Reads `key` from the cache, or through `load` (a store read) and keeps what it found.
    pub async fn get_or_load<Q, E>(
        &self,
        key: &Q,
        now: Timestamp,
        load: impl Future<Output = Result<Option<V>, E>>,
    ) -> Result<Option<Arc<V>>, E>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if let Some(value) = self.get(key, now) {
            return Ok(Some(value));
        }
        let Some(value) = load.await? else { return Ok(None) };
        let value = Arc::new(value);
        self.insert(key.to_owned(), Arc::clone(&value), now);
        Ok(Some(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_live_for_the_ttl_and_can_be_forgotten() {
        let cache = TtlCache::new(5);
        cache.insert("a".to_owned(), Arc::new(1), 100);
        assert_eq!(cache.get("a", 104).as_deref(), Some(&1));
        assert_eq!(cache.get("a", 105), None, "expired");
        cache.insert("b".to_owned(), Arc::new(2), 100);
        cache.forget("b");
        assert_eq!(cache.get("b", 100), None);
    }

    #[test]
    fn a_zero_ttl_keeps_nothing_and_capacity_is_bounded() {
        let off = TtlCache::new(0);
        off.insert(1, Arc::new(1), 100);
        assert_eq!(off.get(&1, 100), None);
        let cache = TtlCache::new(60);
        for i in 0..CAPACITY + 5 {
            cache.insert(i, Arc::new(i), 100);
        }
        assert!(cache.entries().len() <= CAPACITY);
        assert_eq!(cache.get(&(CAPACITY + 4), 100).as_deref(), Some(&(CAPACITY + 4)), "the newest is kept");
    }

    #[tokio::test]
    async fn missing_records_are_not_kept() {
        let cache: TtlCache<u32, u32> = TtlCache::new(60);
        assert_eq!(cache.get_or_load(&1, 100, async { Ok::<_, ()>(None) }).await, Ok(None));
        assert_eq!(cache.entries().len(), 0);
        let found = cache.get_or_load(&1, 100, async { Ok::<_, ()>(Some(7)) }).await;
        assert_eq!(found.unwrap().as_deref(), Some(&7));
        // Served from memory now: the loader is not consulted.
        let cached = cache.get_or_load(&1, 100, async { Ok::<_, ()>(None) }).await;
        assert_eq!(cached.unwrap().as_deref(), Some(&7));
    }
}
