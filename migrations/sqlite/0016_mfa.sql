-- Second factors. TOTP (RFC 6238): the shared secret (base32; the OP must read it to check codes), set up
-- when confirmed with a first code; last_step is the last time step accepted, so no code works twice.
CREATE TABLE totp_credentials (
    user_id TEXT PRIMARY KEY NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    secret TEXT NOT NULL,
    confirmed_at INTEGER,
    last_step INTEGER NOT NULL DEFAULT 0
);

-- One-time recovery codes, by hash; a used one is deleted.
CREATE TABLE recovery_codes (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    PRIMARY KEY (user_id, code_hash)
);
