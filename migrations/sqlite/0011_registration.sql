-- Dynamic Client Registration (RFC 7591 3): the initial access tokens the operator hands out, by hash.
-- A token without expires_at never expires; without uses_left it registers any number of clients.
CREATE TABLE initial_access_tokens (
    id TEXT PRIMARY KEY NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    uses_left INTEGER
);
