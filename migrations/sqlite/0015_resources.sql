-- Resource servers (the APIs oxid's access tokens are for, RFC 8707) and the audience of each token.
CREATE TABLE resource_servers (
    identifier TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    token_format TEXT NOT NULL,
    signing_alg TEXT NOT NULL,
    access_token_lifetime INTEGER,
    secret_hash TEXT,
    jwks TEXT,
    created_at INTEGER NOT NULL
);
ALTER TABLE access_tokens ADD COLUMN audience TEXT;
-- RFC 7662 2.2 `iat`/`nbf` for introspection (NULL for tokens issued before this column).
ALTER TABLE access_tokens ADD COLUMN issued_at INTEGER;
ALTER TABLE refresh_tokens ADD COLUMN resources TEXT;
