//! The SQL statements, written once in the dialect both SQLite and PostgreSQL accept: `$N`
//! placeholders numbered in order of first use, `TRUE`/`FALSE`, `ON CONFLICT`, `RETURNING`.

pub const CLIENT: &str = "SELECT id, name, secret_hash, secret_for_jwt, redirect_uris, grant_types, auth_method, id_token_signed_response_alg, jwks, skip_consent, created_at, metadata FROM clients WHERE id = $1";
pub const CLIENTS: &str = "SELECT id, name, secret_hash, secret_for_jwt, redirect_uris, grant_types, auth_method, id_token_signed_response_alg, jwks, skip_consent, created_at, metadata FROM clients ORDER BY id";
pub const USER: &str = "SELECT id, username, password_hash, email, email_verified, name, given_name, family_name, phone_number, phone_number_verified, address, disabled, created_at, updated_at, claims FROM users WHERE id = $1";
pub const USER_BY_USERNAME: &str = "SELECT id, username, password_hash, email, email_verified, name, given_name, family_name, phone_number, phone_number_verified, address, disabled, created_at, updated_at, claims FROM users WHERE username = $1";
/// Accounts sharing an address are few; more than ten is not a reset anyone asked for.
pub const USERS_BY_EMAIL: &str = "SELECT id, username, password_hash, email, email_verified, name, given_name, family_name, phone_number, phone_number_verified, address, disabled, created_at, updated_at, claims FROM users WHERE lower(email) = lower($1) ORDER BY username LIMIT 10";
pub const VERIFY_EMAIL: &str = "UPDATE users SET email_verified = TRUE, updated_at = $1 WHERE id = $2 AND email = $3";
pub const USERS: &str = "SELECT id, username, password_hash, email, email_verified, name, given_name, family_name, phone_number, phone_number_verified, address, disabled, created_at, updated_at, claims FROM users ORDER BY username";
pub const INSERT_CLIENT: &str = "INSERT INTO clients (id, name, secret_hash, secret_for_jwt, redirect_uris, grant_types, auth_method, id_token_signed_response_alg, jwks, skip_consent, created_at, metadata) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)";
/// A registration's full replacement (RFC 7592 2.2); the client's creation time stays.
pub const SAVE_CLIENT: &str = "INSERT INTO clients (id, name, secret_hash, secret_for_jwt, redirect_uris, grant_types, auth_method, id_token_signed_response_alg, jwks, skip_consent, created_at, metadata) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12) ON CONFLICT (id) DO UPDATE SET name = excluded.name, secret_hash = excluded.secret_hash, secret_for_jwt = excluded.secret_for_jwt, redirect_uris = excluded.redirect_uris, grant_types = excluded.grant_types, auth_method = excluded.auth_method, id_token_signed_response_alg = excluded.id_token_signed_response_alg, jwks = excluded.jwks, skip_consent = excluded.skip_consent, metadata = excluded.metadata";
pub const INSERT_INITIAL_ACCESS_TOKEN: &str =
    "INSERT INTO initial_access_tokens (id, token_hash, created_at, expires_at, uses_left) VALUES ($1,$2,$3,$4,$5)";
pub const INITIAL_ACCESS_TOKENS: &str =
    "SELECT id, token_hash, created_at, expires_at, uses_left FROM initial_access_tokens ORDER BY created_at, id";
pub const DELETE_INITIAL_ACCESS_TOKEN: &str = "DELETE FROM initial_access_tokens WHERE id = $1";
/// Whether the token `$1` may register a client at `$2`.
pub const USABLE_INITIAL_ACCESS_TOKEN: &str = "SELECT 1 FROM initial_access_tokens WHERE token_hash = $1 AND (expires_at IS NULL OR expires_at > $2) AND (uses_left IS NULL OR uses_left > 0)";
/// Spends one use of the token `$1` if it is usable at `$2`.
pub const SPEND_INITIAL_ACCESS_TOKEN: &str = "UPDATE initial_access_tokens SET uses_left = uses_left - 1 WHERE token_hash = $1 AND (expires_at IS NULL OR expires_at > $2) AND (uses_left IS NULL OR uses_left > 0)";
pub const INSERT_RESOURCE: &str = "INSERT INTO resource_servers (identifier, name, scopes, token_format, access_token_lifetime, secret_hash, created_at, signing_alg, jwks) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)";
pub const RESOURCE: &str = "SELECT identifier, name, scopes, token_format, access_token_lifetime, secret_hash, created_at, signing_alg, jwks FROM resource_servers WHERE identifier = $1";
pub const RESOURCES: &str = "SELECT identifier, name, scopes, token_format, access_token_lifetime, secret_hash, created_at, signing_alg, jwks FROM resource_servers ORDER BY identifier";
pub const DELETE_RESOURCE: &str = "DELETE FROM resource_servers WHERE identifier = $1";
pub const TOTP: &str = "SELECT secret, confirmed_at, last_step FROM totp_credentials WHERE user_id = $1";
/// A new, unconfirmed TOTP secret; a confirmed one is never replaced this way.
pub const BEGIN_TOTP: &str = "INSERT INTO totp_credentials (user_id, secret) VALUES ($1, $2) ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, last_step = 0 WHERE totp_credentials.confirmed_at IS NULL";
/// Accepts the code of time step `$1` once (and confirms the secret at `$2` if it was not yet) for user `$3`.
pub const USE_TOTP_STEP: &str = "UPDATE totp_credentials SET last_step = $1, confirmed_at = COALESCE(confirmed_at, $2) WHERE user_id = $3 AND last_step < $1";
pub const DELETE_TOTP: &str = "DELETE FROM totp_credentials WHERE user_id = $1";
pub const DELETE_RECOVERY_CODES: &str = "DELETE FROM recovery_codes WHERE user_id = $1";
pub const INSERT_RECOVERY_CODE: &str = "INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)";
pub const USE_RECOVERY_CODE: &str = "DELETE FROM recovery_codes WHERE user_id = $1 AND code_hash = $2";
pub const RECOVERY_CODES_LEFT: &str = "SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1";
pub const PASSKEYS: &str = "SELECT credential_id, user_id, name, credential, created_at, last_used_at FROM passkeys WHERE user_id = $1 ORDER BY created_at, credential_id";
pub const PASSKEY: &str =
    "SELECT credential_id, user_id, name, credential, created_at, last_used_at FROM passkeys WHERE credential_id = $1";
pub const INSERT_PASSKEY: &str =
    "INSERT INTO passkeys (credential_id, user_id, name, credential, created_at) VALUES ($1,$2,$3,$4,$5)";
pub const PASSKEY_USED: &str = "UPDATE passkeys SET credential = $1, last_used_at = $2 WHERE credential_id = $3";
pub const DELETE_PASSKEY: &str = "DELETE FROM passkeys WHERE user_id = $1 AND credential_id = $2";
pub const DELETE_PASSKEYS: &str = "DELETE FROM passkeys WHERE user_id = $1";
pub const DELETE_CLIENT_1: &str = "DELETE FROM refresh_tokens WHERE client_id = $1";
pub const DELETE_CLIENT_2: &str = "DELETE FROM access_tokens WHERE client_id = $1";
pub const DELETE_CLIENT_3: &str = "DELETE FROM consents WHERE client_id = $1";
pub const DELETE_CLIENT_4: &str = "DELETE FROM pending_authorizations WHERE client_id = $1";
pub const DELETE_CLIENT_5: &str = "DELETE FROM clients WHERE id = $1";
pub const SET_CLIENT_SECRET: &str = "UPDATE clients SET secret_hash = $1, secret_for_jwt = $2 WHERE id = $3";
pub const INSERT_USER: &str = "INSERT INTO users (id, username, password_hash, email, email_verified, name, given_name, family_name, phone_number, phone_number_verified, address, disabled, created_at, updated_at, claims) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15)";
pub const SET_PASSWORD_HASH: &str = "UPDATE users SET password_hash = $1, updated_at = $2 WHERE username = $3";
pub const DISABLE_USER: &str = "UPDATE users SET disabled = TRUE, updated_at = $1 WHERE username = $2";
pub const DELETE_USER_ACCESS_TOKENS: &str =
    "DELETE FROM access_tokens WHERE user_id = (SELECT id FROM users WHERE username = $1)";
pub const DELETE_USER_REFRESH_TOKENS: &str =
    "DELETE FROM refresh_tokens WHERE user_id = (SELECT id FROM users WHERE username = $1)";
/// The user's device and CIBA requests, approved or not: no token is issued from them any more.
pub const DELETE_USER_DECOUPLED_AUTHORIZATIONS: &str =
    "DELETE FROM decoupled_authorizations WHERE user_id = (SELECT id FROM users WHERE username = $1)";
pub const RENAME_USER: &str = "UPDATE users SET username = $1, updated_at = $2 WHERE id = $3";
pub const SET_USER_CLAIMS: &str = "UPDATE users SET claims = $1, updated_at = $2 WHERE username = $3";
pub const DELETE_USER: &str = "DELETE FROM users WHERE username = $1";
pub const INSERT_SESSION: &str = "INSERT INTO sessions (id_hash, sid, user_id, auth_time, amr, acr, expires_at, ip, user_agent) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)";
pub const SESSION: &str = "SELECT id_hash, sid, user_id, auth_time, amr, acr, expires_at, ip, user_agent FROM sessions WHERE id_hash = $1 AND expires_at > $2";
/// Live sessions, newest first; of one user when `$2` is not NULL.
pub const SESSIONS: &str = "SELECT id_hash, sid, user_id, auth_time, amr, acr, expires_at, ip, user_agent FROM sessions WHERE expires_at > $1 AND (CAST($2 AS TEXT) IS NULL OR user_id = $2) ORDER BY auth_time DESC, sid LIMIT $3";
pub const SESSION_CLIENTS: &str = "SELECT DISTINCT client_id FROM session_grants WHERE sid = $1 ORDER BY client_id";
pub const INSERT_SESSION_GRANT: &str =
    "INSERT INTO session_grants (grant_id, sid, client_id, offline) VALUES ($1,$2,$3,$4) ON CONFLICT DO NOTHING";
/// The sessions to end, by what names them (`SessionsToEnd`).
pub const SESSIONS_BY_SID: &str = "SELECT sid, user_id FROM sessions WHERE sid = $1";
pub const SESSIONS_BY_HASH: &str = "SELECT sid, user_id FROM sessions WHERE id_hash = $1";
pub const SESSIONS_BY_USER: &str = "SELECT sid, user_id FROM sessions WHERE user_id = $1";
pub const SESSIONS_BY_USERNAME: &str =
    "SELECT sid, user_id FROM sessions WHERE user_id = (SELECT id FROM users WHERE username = $1)";
/// One notification per client signed in through the session `$1` (Back-Channel Logout 2.3); those
/// without a back-channel logout URI are dropped at delivery.
pub const ENQUEUE_LOGOUT_NOTIFICATIONS: &str = "INSERT INTO logout_notifications (sid, user_id, created_at, next_attempt_at, give_up_at, client_id) SELECT $1, $2, $3, $3, $4, client_id FROM (SELECT DISTINCT client_id FROM session_grants WHERE sid = $1) AS signed_in";
/// The grants that end with the session `$1`: all but offline_access ones unless `$2` (Back-Channel
/// Logout 2.7).
pub const ENDING_GRANTS: &str =
    "SELECT grant_id FROM session_grants WHERE sid = $1 AND (offline = FALSE OR $2) ORDER BY grant_id";
pub const DELETE_CODES_OF_GRANT: &str = "DELETE FROM authorization_codes WHERE grant_id = $1";
pub const DELETE_SESSION_GRANTS: &str = "DELETE FROM session_grants WHERE sid = $1";
pub const DELETE_SESSION_BY_SID: &str = "DELETE FROM sessions WHERE sid = $1";
/// Due notifications, oldest first, claimed for `$2` seconds. SQLite has one writer, so the select and
/// the update cannot interleave with another node's.
pub const CLAIM_LOGOUT_NOTIFICATIONS: &str = "UPDATE logout_notifications SET claimed_until = $1 + $2 WHERE id IN (SELECT id FROM logout_notifications WHERE failed_at IS NULL AND next_attempt_at <= $1 AND claimed_until <= $1 ORDER BY next_attempt_at, id LIMIT $3) RETURNING id, client_id, user_id, sid, created_at, attempts, give_up_at, failed_at, last_error";
/// PostgreSQL only: the same, skipping rows another node has locked meanwhile, so that each
/// notification is claimed by one node.
pub const CLAIM_LOGOUT_NOTIFICATIONS_PG: &str = "UPDATE logout_notifications SET claimed_until = $1 + $2 WHERE id IN (SELECT id FROM logout_notifications WHERE failed_at IS NULL AND next_attempt_at <= $1 AND claimed_until <= $1 ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING id, client_id, user_id, sid, created_at, attempts, give_up_at, failed_at, last_error";
pub const DELETE_LOGOUT_NOTIFICATION: &str = "DELETE FROM logout_notifications WHERE id = $1";
/// `$1`: when to try again; `$2`: the error; `$3`: the notification.
pub const RETRY_LOGOUT_NOTIFICATION: &str = "UPDATE logout_notifications SET attempts = attempts + 1, next_attempt_at = $1, claimed_until = 0, last_error = $2 WHERE id = $3";
/// `$1`: when it was given up; `$2`: the error; `$3`: the notification.
pub const GIVE_UP_LOGOUT_NOTIFICATION: &str = "UPDATE logout_notifications SET attempts = attempts + 1, failed_at = $1, claimed_until = 0, last_error = $2 WHERE id = $3";
/// Notifications for the operator: pending ones, or (`$1`) only those given up.
pub const LOGOUT_NOTIFICATIONS: &str = "SELECT id, client_id, user_id, sid, created_at, attempts, give_up_at, failed_at, last_error FROM logout_notifications WHERE failed_at IS NOT NULL OR NOT $1 ORDER BY created_at, id LIMIT $2";
pub const INSERT_PENDING: &str =
    "INSERT INTO pending_authorizations (id, client_id, request_json, created_at, expires_at) VALUES ($1,$2,$3,$4,$5)";
pub const PENDING: &str = "SELECT id, client_id, request_json, login_sid, chosen_sid, created_at, expires_at FROM pending_authorizations WHERE id = $1 AND expires_at > $2";
pub const INSERT_PUSHED_REQUEST: &str =
    "INSERT INTO pushed_authorization_requests (uri_hash, client_id, params, expires_at) VALUES ($1,$2,$3,$4)";
/// Takes a pushed request once (RFC 9126 4): whoever deletes it uses it.
pub const TAKE_PUSHED_REQUEST: &str =
    "DELETE FROM pushed_authorization_requests WHERE uri_hash = $1 AND expires_at > $2 RETURNING client_id, params";
pub const INSERT_DECOUPLED_AUTHORIZATION: &str = "INSERT INTO decoupled_authorizations (code_hash, user_code, user_id, client_id, scope, grant_id, expires_at, poll_interval, binding_message, notification_token, ping_auth_req_id, status) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,'pending')";
/// A pending, live device authorization by the user's code.
pub const PENDING_DEVICE_AUTHORIZATION: &str = "SELECT code_hash, user_code, client_id, scope, grant_id, expires_at, poll_interval, status, user_id, auth, binding_message, notification_token, ping_auth_req_id FROM decoupled_authorizations WHERE user_code = $1 AND status = 'pending' AND expires_at > $2";
/// The user's decision (`$1` approved or denied) on a pending, live device authorization.
pub const DECIDE_DEVICE_AUTHORIZATION: &str = "UPDATE decoupled_authorizations SET status = $1, user_id = $2, auth = $3 WHERE user_code = $4 AND status = 'pending' AND expires_at > $5";
/// The asked user's decision on a pending, live CIBA request, by its code's hash (`$4`) and the user (`$2`).
pub const DECIDE_BACKCHANNEL_REQUEST: &str = "UPDATE decoupled_authorizations SET status = $1, user_id = $2, auth = $3 WHERE code_hash = $4 AND user_id = $2 AND user_code IS NULL AND status = 'pending' AND expires_at > $5 RETURNING code_hash, user_code, client_id, scope, grant_id, expires_at, poll_interval, status, user_id, auth, binding_message, notification_token, ping_auth_req_id";
/// The CIBA requests waiting for user `$1`, oldest first.
pub const PENDING_BACKCHANNEL_REQUESTS: &str = "SELECT code_hash, user_code, client_id, scope, grant_id, expires_at, poll_interval, status, user_id, auth, binding_message, notification_token, ping_auth_req_id FROM decoupled_authorizations WHERE user_id = $1 AND user_code IS NULL AND status = 'pending' AND expires_at > $2 ORDER BY expires_at, code_hash";
/// A device's poll: the authorization by its device code, of this client.
pub const POLLED_DECOUPLED_AUTHORIZATION: &str = "SELECT code_hash, user_code, client_id, scope, grant_id, expires_at, poll_interval, status, user_id, auth, binding_message, notification_token, ping_auth_req_id, last_polled_at FROM decoupled_authorizations WHERE code_hash = $1 AND client_id = $2";
/// PostgreSQL only: the same, locked until the poll is recorded.
pub const POLLED_DECOUPLED_AUTHORIZATION_PG: &str = "SELECT code_hash, user_code, client_id, scope, grant_id, expires_at, poll_interval, status, user_id, auth, binding_message, notification_token, ping_auth_req_id, last_polled_at FROM decoupled_authorizations WHERE code_hash = $1 AND client_id = $2 FOR UPDATE";
/// Records a poll at `$1`, with the interval (`$2`) from now on.
pub const RECORD_DECOUPLED_POLL: &str =
    "UPDATE decoupled_authorizations SET last_polled_at = $1, poll_interval = $2 WHERE code_hash = $3";
/// Spends an approved device authorization: its tokens are issued once.
pub const SPEND_DECOUPLED: &str =
    "UPDATE decoupled_authorizations SET status = 'used' WHERE code_hash = $1 AND status = 'approved'";
pub const DELETE_PENDING: &str = "DELETE FROM pending_authorizations WHERE id = $1";
pub const CONSENT: &str = "SELECT scope, claims FROM consents WHERE user_id = $1 AND client_id = $2";
pub const SAVE_CONSENT: &str = "INSERT INTO consents (user_id, client_id, scope, granted_at, claims) VALUES ($1,$2,$3,$4,$5) ON CONFLICT (user_id, client_id) DO UPDATE SET scope = excluded.scope, claims = excluded.claims, granted_at = excluded.granted_at";
pub const DELETE_SESSION: &str = "DELETE FROM sessions WHERE id_hash = $1";
pub const SET_PENDING_LOGIN: &str = "UPDATE pending_authorizations SET login_sid = $1 WHERE id = $2";
pub const SET_PENDING_CHOICE: &str = "UPDATE pending_authorizations SET chosen_sid = $1 WHERE id = $2";
/// The apps a user has consented to, by name.
pub const CONSENTED_APPS: &str = "SELECT consents.client_id, clients.name, consents.scope, consents.claims, consents.granted_at FROM consents JOIN clients ON clients.id = consents.client_id WHERE consents.user_id = $1 ORDER BY clients.name, consents.client_id";
pub const DELETE_CONSENT: &str = "DELETE FROM consents WHERE user_id = $1 AND client_id = $2";
/// Every grant user `$1` made to client `$2`: through their live sessions (codes, access tokens) and
/// the refresh tokens that outlive them. Ordered, as every multi-grant lock taker, so that two
/// revocations never wait on each other.
pub const GRANTS_TO_CLIENT: &str = "SELECT grant_id FROM session_grants WHERE sid IN (SELECT sid FROM sessions WHERE user_id = $1) AND client_id = $2 UNION SELECT grant_id FROM refresh_tokens WHERE user_id = $1 AND client_id = $2 ORDER BY grant_id";
pub const DELETE_SESSION_GRANTS_TO_CLIENT: &str =
    "DELETE FROM session_grants WHERE sid IN (SELECT sid FROM sessions WHERE user_id = $1) AND client_id = $2";
pub const CODE: &str = "SELECT grant_json, used FROM authorization_codes WHERE code_hash = $1";
pub const SPEND_CODE: &str = "UPDATE authorization_codes SET used = TRUE WHERE code_hash = $1 AND used = FALSE";
pub const CODE_GRANT: &str = "SELECT grant_id FROM authorization_codes WHERE code_hash = $1";
/// SQLite: with whether its grant has been revoked (revoking leaves the grant's tokens to the sweeper).
pub const REFRESH_TOKEN_SQLITE: &str = "SELECT client_id, user_id, scope, grant_id, auth_time, amr, acr, sid, expires_at, claims, used, jkt, resources, EXISTS (SELECT 1 FROM revoked_grants r WHERE r.grant_id = refresh_tokens.grant_id) FROM refresh_tokens WHERE token_hash = $1 AND client_id = $2";
pub const SPEND_REFRESH_TOKEN: &str = "UPDATE refresh_tokens SET used = TRUE WHERE token_hash = $1 AND client_id = $2 AND used = FALSE AND expires_at > $3";
pub const SPENT_REFRESH_TOKEN_GRANT: &str =
    "SELECT grant_id FROM refresh_tokens WHERE token_hash = $1 AND client_id = $2 AND used = TRUE";
/// PostgreSQL only: serializes the transactions that issue or revoke tokens of one grant, so a token
/// inserted while the grant is being revoked is either seen by the revocation or refused by the check
/// of `revoked_grants` (under READ COMMITTED neither would see the other's uncommitted rows).
pub const LOCK_GRANT: &str = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))";
/// PostgreSQL only: the session grant and the code of an approval in one statement (one round trip).
pub const INSERT_CODE_WITH_SESSION_GRANT_PG: &str = "WITH signed_in AS (INSERT INTO session_grants (grant_id, sid, client_id, offline) VALUES ($1,$2,$3,$4) ON CONFLICT DO NOTHING) INSERT INTO authorization_codes (code_hash, grant_id, grant_json, expires_at) VALUES ($5,$1,$6,$7)";
pub const INSERT_CODE: &str =
    "INSERT INTO authorization_codes (code_hash, grant_id, grant_json, expires_at) VALUES ($1,$2,$3,$4)";
pub const INSERT_ACCESS_TOKEN: &str = "INSERT INTO access_tokens (token_hash, client_id, user_id, scope, grant_id, expires_at, claims, jkt, audience, issued_at) SELECT $1,$2,$3,$4,$5,$6,$7,$8,$9,$10 WHERE NOT EXISTS (SELECT 1 FROM revoked_grants WHERE grant_id = $5)";
/// PostgreSQL only: lone access tokens in one statement (one array per column), each unless its grant
/// has been revoked; returns the hashes inserted.
pub const INSERT_ACCESS_TOKENS_PG: &str = "INSERT INTO access_tokens (token_hash, client_id, user_id, scope, grant_id, expires_at, claims, jkt, audience, issued_at) SELECT t.* FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[], $7::text[], $8::text[], $9::text[], $10::int8[]) AS t(token_hash, client_id, user_id, scope, grant_id, expires_at, claims, jkt, audience, issued_at) WHERE t.grant_id IS NULL OR NOT EXISTS (SELECT 1 FROM revoked_grants r WHERE r.grant_id = t.grant_id) RETURNING token_hash";
/// PostgreSQL only: the records among the keys `$1`, for the batched lookups (`postgres_batch::lookups`:
/// an index lookup per key, whatever the batch's size; whether each is live is for the caller to check).
pub const REFRESH_TOKENS_PG: &str = "SELECT token_hash, client_id, user_id, scope, grant_id, auth_time, amr, acr, sid, expires_at, claims, used, jkt, resources FROM refresh_tokens WHERE token_hash = ANY($1::text[])";
pub const CODES_PG: &str =
    "SELECT code_hash, grant_json, used FROM authorization_codes WHERE code_hash = ANY($1::text[])";
pub const SESSIONS_PG: &str = "SELECT id_hash, sid, user_id, auth_time, amr, acr, expires_at, ip, user_agent FROM sessions WHERE id_hash = ANY($1::text[])";
pub const USERS_PG: &str = "SELECT id, username, password_hash, email, email_verified, name, given_name, family_name, phone_number, phone_number_verified, address, disabled, created_at, updated_at, claims FROM users WHERE id = ANY($1::text[])";
pub const ACCESS_TOKENS_PG: &str = "SELECT token_hash, client_id, user_id, scope, grant_id, expires_at, claims, jkt, audience, issued_at FROM access_tokens WHERE token_hash = ANY($1::text[])";
/// PostgreSQL only: the grant's lock, what a token request spends and the tokens it issues, in one round
/// trip (the function of migration 0020, which holds the statement). `$1` says what is spent (`code`,
/// `refresh_token`, `decoupled` or `none`), `$2`–`$4` which; then the access token (`$5`–`$14`) and the
/// refresh token (`$15`–`$27`, all NULL for none). Returns how many rows were spent (0: nothing live, and
/// nothing issued); a grant revoked meanwhile is the error `GRANT_REVOKED_PG`, and nothing is committed.
pub const SPEND_AND_ISSUE_PG: &str = "SELECT oxid_spend_and_issue($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22,$23,$24,$25,$26,$27)";
/// The SQLSTATE of `SPEND_AND_ISSUE_PG` for a revoked grant.
pub const GRANT_REVOKED_PG: &str = "OXRVK";
pub const INSERT_REFRESH_TOKEN: &str = "INSERT INTO refresh_tokens (token_hash, client_id, user_id, scope, grant_id, auth_time, amr, acr, sid, expires_at, claims, jkt, resources) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)";
pub const DELETE_ACCESS_TOKEN: &str = "DELETE FROM access_tokens WHERE token_hash = $1";
/// SQLite: none of a revoked grant (revoking leaves the grant's tokens to the sweeper).
pub const ACCESS_TOKEN_SQLITE: &str = "SELECT client_id, user_id, scope, grant_id, expires_at, claims, jkt, audience, issued_at FROM access_tokens WHERE token_hash = $1 AND expires_at > $2 AND NOT EXISTS (SELECT 1 FROM revoked_grants r WHERE r.grant_id = access_tokens.grant_id)";
pub const REVOKE_GRANT_1: &str =
    "INSERT INTO revoked_grants (grant_id, revoked_at) VALUES ($1, $2) ON CONFLICT DO NOTHING";
/// PostgreSQL deletes a revoked grant's tokens at once; SQLite leaves them to the sweeper (see
/// `REFRESH_TOKEN_SQLITE`, `ACCESS_TOKEN_SQLITE`).
pub const REVOKE_GRANT_2: &str = "DELETE FROM access_tokens WHERE grant_id = $1";
pub const REVOKE_GRANT_3: &str = "DELETE FROM refresh_tokens WHERE grant_id = $1";
pub const SIGNING_KEYS: &str = "SELECT kid, alg, private_jwk, public_jwk, created_at, retired_at, activates_at FROM signing_keys ORDER BY created_at, kid";
pub const RETIRE_CURRENT_KEY: &str = "UPDATE signing_keys SET retired_at = $1 WHERE alg = $2 AND retired_at IS NULL";
pub const RETIRE_KEY: &str = "UPDATE signing_keys SET retired_at = $1 WHERE kid = $2 AND retired_at IS NULL";
pub const INSERT_SIGNING_KEY: &str = "INSERT INTO signing_keys (kid, alg, private_jwk, public_jwk, created_at, retired_at, activates_at) VALUES ($1,$2,$3,$4,$5,NULL,$6)";
pub const DELETE_KEYS_RETIRED_BEFORE: &str =
    "DELETE FROM signing_keys WHERE retired_at IS NOT NULL AND retired_at < $1";
pub const FIRST_USE: &str = "INSERT INTO used_once (key, expires_at) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at WHERE used_once.expires_at <= $3";
pub const RESERVE_ATTEMPT: &str = "INSERT INTO login_failures (key, failures, window_ends_at) VALUES ($1, 1, $2 + $3) ON CONFLICT (key) DO UPDATE SET failures = CASE WHEN login_failures.window_ends_at > $2 THEN login_failures.failures + 1 ELSE 1 END, window_ends_at = CASE WHEN login_failures.window_ends_at > $2 THEN login_failures.window_ends_at ELSE $2 + $3 END WHERE login_failures.window_ends_at <= $2 OR login_failures.failures < $4 RETURNING failures";
pub const RELEASE_ATTEMPT: &str = "UPDATE login_failures SET failures = failures - 1 WHERE key = $1 AND failures > 0";
pub const INSERT_SECRET: &str = "INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING";
pub const REPLACE_SECRET: &str =
    "INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value";
pub const SECRET: &str = "SELECT value FROM secrets WHERE name = $1";
pub const RECORD_HEALTH_CHECK: &str = "INSERT INTO health (id, checked_at) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at";
pub const CLEAR_ATTEMPTS: &str = "DELETE FROM login_failures WHERE key = $1";
pub const INSERT_AUDIT_EVENT: &str =
    "INSERT INTO audit_events (at, kind, user_id, username, client_id, ip, detail) VALUES ($1,$2,$3,$4,$5,$6,$7)";
pub const AUDIT_EVENTS: &str = "SELECT at, kind, user_id, username, client_id, ip, detail FROM audit_events WHERE at >= $1 AND (CAST($2 AS TEXT) IS NULL OR username = $2 OR user_id = $3) ORDER BY at, id LIMIT $4";
pub const DELETE_AUDIT_EVENTS_BEFORE: &str = "DELETE FROM audit_events WHERE at < $1";

/// What the sweeper deletes: each table, its key and the time after which a row is of no use.
const SWEPT_TABLES: [(&str, &str, &str); 11] = [
    ("authorization_codes", "code_hash", "expires_at"),
    ("access_tokens", "token_hash", "expires_at"),
    ("refresh_tokens", "token_hash", "expires_at"),
    ("pending_authorizations", "id", "expires_at"),
    ("used_once", "key", "expires_at"),
    ("login_failures", "key", "window_ends_at"),
    ("revoked_grants", "grant_id", "revoked_at"),
    ("logout_notifications", "id", "failed_at"),
    ("initial_access_tokens", "id", "expires_at"),
    ("pushed_authorization_requests", "uri_hash", "expires_at"),
    ("decoupled_authorizations", "code_hash", "expires_at"),
];

/// A session's grants, for up to `$2` sessions that expired before `$1`.
const SWEEP_SESSION_GRANTS: &str =
    "DELETE FROM session_grants WHERE sid IN (SELECT sid FROM sessions WHERE expires_at < $1 LIMIT $2)";
/// Up to `$2` sessions that expired before `$1` and have no grants left.
const SWEEP_SESSIONS: &str = "DELETE FROM sessions WHERE id_hash IN (SELECT id_hash FROM sessions WHERE expires_at < $1 AND NOT EXISTS (SELECT 1 FROM session_grants WHERE session_grants.sid = sessions.sid) LIMIT $2)";

/// The sweeper's statements, each with the table it deletes from: each deletes at most `$2` rows (for
/// session grants: those of `$2` sessions) past the cutoff `$1`. Expired sessions' grants go first, then
/// the sessions that have none left, so no grant outlives its session whatever runs in between.
pub fn sweep_statements() -> impl Iterator<Item = (&'static str, String)> {
    let by_expiry = SWEPT_TABLES.into_iter().map(|(table, key, column)| {
        (table, format!("DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM {table} WHERE {column} < $1 LIMIT $2)"))
    });
    by_expiry.chain([("session_grants", SWEEP_SESSION_GRANTS.to_owned()), ("sessions", SWEEP_SESSIONS.to_owned())])
}

/// SQLite keeps access tokens in the order they expire (`crypto::expiring_token`; migrations 0020 and
/// 0021), with no expiry index: the expired ones are the keys (22-byte blobs) below the cutoff's
/// millisecond as 6 bytes, a range at the start of the primary key (every blob sorts after every text).
/// The check of `expires_at` keeps keys ordered by issuing time (older tokens) until they expire; keys
/// still in text form (bare digests) are found through an index of their own.
const SWEEP_ACCESS_TOKENS_SQLITE: &str = "DELETE FROM access_tokens WHERE token_hash IN (SELECT token_hash FROM access_tokens WHERE token_hash >= x'' AND token_hash < unhex(printf('%012x', $1 * 1000)) AND expires_at < $1 UNION ALL SELECT token_hash FROM access_tokens WHERE typeof(token_hash) = 'text' AND expires_at < $1 LIMIT $2)";

/// Access tokens stored under a 55-character text key before SQLite migration 0021, and what rewrites
/// each to its compact key.
pub const TEXT_KEYED_ACCESS_TOKENS_SQLITE: &str =
    "SELECT token_hash FROM access_tokens WHERE typeof(token_hash) = 'text' AND length(token_hash) = 55";
pub const REKEY_ACCESS_TOKEN_SQLITE: &str = "UPDATE access_tokens SET token_hash = $1 WHERE token_hash = $2";

/// `sweep_statements` as SQLite runs them.
pub fn sweep_statements_sqlite() -> impl Iterator<Item = (&'static str, String)> {
    sweep_statements().map(|(table, sql)| match table {
        "access_tokens" => (table, SWEEP_ACCESS_TOKENS_SQLITE.to_owned()),
        _ => (table, sql),
    })
}

/// The tables `store stats` counts.
pub const COUNTED_TABLES: [&str; 20] = [
    "clients",
    "users",
    "sessions",
    "pending_authorizations",
    "consents",
    "authorization_codes",
    "access_tokens",
    "refresh_tokens",
    "revoked_grants",
    "signing_keys",
    "used_once",
    "login_failures",
    "secrets",
    "audit_events",
    "session_grants",
    "logout_notifications",
    "initial_access_tokens",
    "pushed_authorization_requests",
    "decoupled_authorizations",
    "resource_servers",
];

#[cfg(test)]
mod tests {
    /// The string literals of a Rust source text (escaped quotes kept in).
    fn literals(source: &str) -> Vec<String> {
        let (mut out, mut current, mut inside, mut escaped) = (Vec::new(), String::new(), false, false);
        for c in source.chars() {
            match (inside, escaped, c) {
                (true, false, '\\') => escaped = true,
                (true, false, '"') => {
                    inside = false;
                    out.push(std::mem::take(&mut current));
                }
                (true, _, c) => {
                    escaped = false;
                    current.push(c);
                }
                (false, _, '"') => inside = true,
                _ => {}
            }
        }
        out
    }

    /// SQLite numbers `$N` parameters by their first appearance, not by N: both backends bind the same
    /// arguments only if every statement uses `$1`, `$2`, … first in that order.
    #[test]
    fn placeholders_are_first_used_in_order() {
        for sql in literals(include_str!("queries.rs")) {
            let mut first_uses: Vec<u32> = Vec::new();
            let mut rest = sql.as_str();
            while let Some(at) = rest.find('$') {
                let digits: String = rest[at + 1..].chars().take_while(char::is_ascii_digit).collect();
                if let Ok(n) = digits.parse::<u32>() {
                    if !first_uses.contains(&n) {
                        first_uses.push(n);
                    }
                }
                rest = &rest[at + 1..];
            }
            let expected: Vec<u32> = (1..=first_uses.len() as u32).collect();
            assert_eq!(first_uses, expected, "placeholders out of order in: {sql}");
        }
    }
}
