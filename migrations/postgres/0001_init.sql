-- oxid schema v1 (PostgreSQL). Times are unix seconds; secrets are stored as SHA-256 digests.

CREATE TABLE clients (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    secret_hash TEXT,
    secret_for_jwt TEXT,
    redirect_uris TEXT NOT NULL,       -- JSON array
    grant_types TEXT NOT NULL,         -- JSON array
    auth_method TEXT NOT NULL,
    id_token_signed_response_alg TEXT NOT NULL,
    jwks TEXT,
    skip_consent BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    email TEXT,
    email_verified BOOLEAN NOT NULL DEFAULT FALSE,
    name TEXT,
    given_name TEXT,
    family_name TEXT,
    phone_number TEXT,
    phone_number_verified BOOLEAN NOT NULL DEFAULT FALSE,
    address TEXT,
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY NOT NULL,
    sid TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    auth_time BIGINT NOT NULL,
    amr TEXT NOT NULL,
    acr TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE pending_authorizations (
    id TEXT PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    request_json TEXT NOT NULL,
    -- The session created by a login within this flow: it satisfies prompt=login and max_age.
    login_sid TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE consents (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_id TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

CREATE TABLE authorization_codes (
    code_hash TEXT PRIMARY KEY NOT NULL,
    grant_id TEXT NOT NULL,
    grant_json TEXT NOT NULL,
    used BOOLEAN NOT NULL DEFAULT FALSE,
    expires_at BIGINT NOT NULL
);

CREATE TABLE access_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    user_id TEXT REFERENCES users(id) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    grant_id TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX access_tokens_grant ON access_tokens(grant_id);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    grant_id TEXT NOT NULL,
    auth_time BIGINT NOT NULL,
    amr TEXT NOT NULL,
    acr TEXT NOT NULL,
    sid TEXT NOT NULL,
    used BOOLEAN NOT NULL DEFAULT FALSE,
    expires_at BIGINT NOT NULL
);
CREATE INDEX refresh_tokens_grant ON refresh_tokens(grant_id);

-- Revoked grants: a replayed code or refresh token revokes its grant, including tokens issued later
-- by a request already in flight.
CREATE TABLE revoked_grants (
    grant_id TEXT PRIMARY KEY NOT NULL,
    revoked_at BIGINT NOT NULL
);

CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY NOT NULL,
    alg TEXT NOT NULL,
    private_jwk TEXT NOT NULL,
    public_jwk TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT
);
-- At most one current key per algorithm, even when several nodes start at once.
CREATE UNIQUE INDEX signing_keys_one_current ON signing_keys(alg) WHERE retired_at IS NULL;

CREATE TABLE used_once (
    key TEXT PRIMARY KEY NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE login_failures (
    key TEXT PRIMARY KEY NOT NULL,
    failures BIGINT NOT NULL,
    window_ends_at BIGINT NOT NULL
);
