-- Access tokens in expiry order are keyed by 22 bytes instead of 55 characters: the expiry millisecond's
-- 6 bytes and the digest's first 16 (store/sqlite.rs `AccessTokenKey`; issue 12: bounded storage). The
-- column keeps its declared type; SQLite stores the blobs as they are, and they sort after every text key.
-- Keys still in text form (bare digests; ordered keys from before this migration, which `SqliteStore::open`
-- then rewrites) are the ones the sweeper finds through this index.
DROP INDEX access_tokens_unordered;
CREATE INDEX access_tokens_unordered ON access_tokens(expires_at) WHERE typeof(token_hash) = 'text';
