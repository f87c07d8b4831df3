-- Pushed Authorization Requests (RFC 9126): the validated parameters of a pushed request, under the
-- hash of the random part of its request_uri, until used once or expired.
CREATE TABLE pushed_authorization_requests (
    uri_hash TEXT PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL,
    params TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
