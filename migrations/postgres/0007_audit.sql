-- Security events for operators (sign-ins, sign-ups, consent, revocations, changes made with the CLI,
-- key rotations). No secrets: names and ids only.
CREATE TABLE audit_events (
    id BIGSERIAL PRIMARY KEY,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    user_id TEXT,
    username TEXT,
    client_id TEXT,
    ip TEXT,
    detail TEXT NOT NULL
);
CREATE INDEX audit_events_at ON audit_events(at);
CREATE INDEX audit_events_username ON audit_events(username, at);
