-- Decoupled flows, where the user decides away from the client: the device authorization grant
-- (RFC 8628: found by the user's code on the verification page) and CIBA (Client-Initiated Backchannel
-- Authentication 1.0: addressed to one user, listed on their account page). The client polls with the
-- device code or auth_req_id, stored by hash. status: pending, approved, denied, or used (tokens issued
-- once). user_id: the user who decided (device), or the one asked (CIBA).
CREATE TABLE decoupled_authorizations (
    code_hash TEXT PRIMARY KEY NOT NULL,
    user_code TEXT UNIQUE,
    client_id TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    grant_id TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    poll_interval BIGINT NOT NULL,
    last_polled_at BIGINT,
    status TEXT NOT NULL,
    user_id TEXT REFERENCES users(id) ON DELETE CASCADE,
    auth TEXT,
    binding_message TEXT,
    notification_token TEXT,
    -- CIBA ping mode: the notification carries the auth_req_id itself (CIBA 10.2); it is no credential
    -- on its own (CIBA clients authenticate at the token endpoint).
    ping_auth_req_id TEXT
);
CREATE INDEX decoupled_authorizations_user ON decoupled_authorizations(user_id);
