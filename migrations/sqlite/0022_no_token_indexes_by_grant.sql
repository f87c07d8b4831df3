-- Revoking a grant no longer deletes its tokens on SQLite: lookups refuse the tokens of a revoked grant,
-- the sweeper deletes them once expired, and the grant stays in `revoked_grants` as long as any of them
-- could be presented. The indexes by grant that the deletes needed go: every token was an insert at its
-- grant's place in each (a random page per token and index, written at every commit; issue 12).
DROP INDEX refresh_tokens_grant;
DROP INDEX access_tokens_grant;
