-- Readiness probes write here: a store that cannot take a write (full disk, read-only) is not ready.
CREATE TABLE health (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at BIGINT NOT NULL
);
