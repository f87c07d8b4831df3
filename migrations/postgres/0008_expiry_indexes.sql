-- The sweeper finds expired rows by these, a small batch at a time.
CREATE INDEX sessions_expires ON sessions(expires_at);
CREATE INDEX pending_authorizations_expires ON pending_authorizations(expires_at);
CREATE INDEX authorization_codes_expires ON authorization_codes(expires_at);
CREATE INDEX access_tokens_expires ON access_tokens(expires_at);
CREATE INDEX refresh_tokens_expires ON refresh_tokens(expires_at);
CREATE INDEX revoked_grants_revoked ON revoked_grants(revoked_at);
CREATE INDEX used_once_expires ON used_once(expires_at);
CREATE INDEX login_failures_window ON login_failures(window_ends_at);
