-- A grant's exchange in one round trip (issue 12): the grant's lock, then one statement that spends the
-- code, refresh token or decoupled authorization and stores the new tokens. Inside a function each
-- statement takes a fresh snapshot (READ COMMITTED), so the statement after the lock sees every
-- revocation committed before the lock was granted, as `BEGIN` with the lock, the statement and the
-- commit did in three round trips. The lock key is the one `LOCK_GRANT` takes, so nodes of either version exclude each other.
-- Returns how many rows were spent (0: nothing live, so nothing issued either); a grant revoked meanwhile
-- raises OXRVK, so that nothing it spent is committed. Called by `q::SPEND_AND_ISSUE_PG`; the parameters are
-- 1 what is spent (code, refresh_token, decoupled, none), 2 its hash, 3 4 the refresh token's client and
-- the time, 5-14 the access token, 15-27 the refresh token (all NULL for none).
CREATE FUNCTION oxid_spend_and_issue(text, text, text, bigint, text, text, text, text, text, bigint, text, text,
    text, bigint, text, text, text, text, text, bigint, text, text, text, bigint, text, text, text)
RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
    spent_count bigint;
    issued_count bigint;
BEGIN
    IF $9 IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(hashtextextended($9, 0));
    END IF;
    WITH spent_code AS (UPDATE authorization_codes SET used = TRUE WHERE $1::text = 'code' AND code_hash = $2 AND used = FALSE RETURNING 1),
        spent_refresh_token AS (UPDATE refresh_tokens SET used = TRUE WHERE $1 = 'refresh_token' AND token_hash = $2 AND client_id = $3 AND used = FALSE AND expires_at > $4 RETURNING 1),
        spent_decoupled AS (UPDATE decoupled_authorizations SET status = 'used' WHERE $1 = 'decoupled' AND code_hash = $2 AND status = 'approved' RETURNING 1),
        spent AS (SELECT 1 FROM spent_code UNION ALL SELECT 1 FROM spent_refresh_token UNION ALL SELECT 1 FROM spent_decoupled UNION ALL SELECT 1 WHERE $1 = 'none'),
        access AS (INSERT INTO access_tokens (token_hash, client_id, user_id, scope, grant_id, expires_at, claims, jkt, audience, issued_at) SELECT $5,$6,$7,$8,$9,$10,$11,$12,$13,$14 FROM spent WHERE NOT EXISTS (SELECT 1 FROM revoked_grants WHERE grant_id = $9) RETURNING 1),
        refresh AS (INSERT INTO refresh_tokens (token_hash, client_id, user_id, scope, grant_id, auth_time, amr, acr, sid, expires_at, claims, jkt, resources) SELECT $15,$16,$17,$18,$19,$20,$21,$22,$23,$24,$25,$26,$27 FROM access WHERE $15::text IS NOT NULL)
    SELECT (SELECT count(*) FROM spent), (SELECT count(*) FROM access) INTO spent_count, issued_count;
    IF spent_count > 0 AND issued_count = 0 THEN
        RAISE EXCEPTION 'the grant has been revoked' USING ERRCODE = 'OXRVK';
    END IF;
    RETURN spent_count;
END
$fn$;
