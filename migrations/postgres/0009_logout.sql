-- Sessions and logout. Where a session was started from, for the account page.
ALTER TABLE sessions ADD COLUMN ip TEXT;
ALTER TABLE sessions ADD COLUMN user_agent TEXT;
CREATE INDEX sessions_user ON sessions(user_id);

-- What was granted through each session (Back-Channel Logout 2.3, 2.7): the clients to notify when it
-- ends, and the grants that end with it (all but offline_access ones). Written with every approval, so
-- kept lean: keyed by session, no index of its own for the sweeper, which deletes a session's
-- grants just before the session (a session outlives its grants, never the reverse).
CREATE TABLE session_grants (
    sid TEXT NOT NULL,
    grant_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    offline BOOLEAN NOT NULL,
    PRIMARY KEY (sid, grant_id)
);

-- The outbox of Back-Channel Logout notifications: written in the transaction that ends the session,
-- delivered by whichever node claims it first (claimed_until is its lease), retried with backoff until
-- give_up_at; failed_at marks one given up (kept for the operator until swept).
CREATE TABLE logout_notifications (
    id BIGSERIAL PRIMARY KEY,
    client_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    sid TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    claimed_until BIGINT NOT NULL DEFAULT 0,
    give_up_at BIGINT NOT NULL,
    failed_at BIGINT,
    last_error TEXT
);
CREATE INDEX logout_notifications_due ON logout_notifications(next_attempt_at) WHERE failed_at IS NULL;
CREATE INDEX logout_notifications_failed ON logout_notifications(failed_at) WHERE failed_at IS NOT NULL;
