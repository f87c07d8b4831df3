-- Advance publication: a new signing key is published at once and signs only from activates_at (RPs
-- cache JWK Sets). Keys from before this were active from the start.
ALTER TABLE signing_keys ADD COLUMN activates_at INTEGER NOT NULL DEFAULT 0;
