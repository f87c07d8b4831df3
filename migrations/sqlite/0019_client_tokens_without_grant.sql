-- client_credentials tokens belong to no grant: grant_id may be NULL, and only grant-bound tokens are in
-- the grant index (revocation looks tokens up by grant; a client's own token is revoked by its hash).
-- SQLite cannot drop NOT NULL in place, so the table is rebuilt (sqlite.org/lang_altertable.html 7).
CREATE TABLE access_tokens_new (
    token_hash TEXT PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    user_id TEXT REFERENCES users(id) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    grant_id TEXT,
    expires_at INTEGER NOT NULL,
    claims TEXT,
    jkt TEXT,
    audience TEXT,
    issued_at INTEGER
);
INSERT INTO access_tokens_new (token_hash, client_id, user_id, scope, grant_id, expires_at, claims, jkt, audience, issued_at)
    SELECT token_hash, client_id, user_id, scope, grant_id, expires_at, claims, jkt, audience, issued_at FROM access_tokens;
DROP TABLE access_tokens;
ALTER TABLE access_tokens_new RENAME TO access_tokens;
CREATE INDEX access_tokens_grant ON access_tokens(grant_id) WHERE grant_id IS NOT NULL;
CREATE INDEX access_tokens_expires ON access_tokens(expires_at);
