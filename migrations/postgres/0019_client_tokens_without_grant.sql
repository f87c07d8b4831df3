-- client_credentials tokens belong to no grant: grant_id may be NULL, and only grant-bound tokens are in
-- the grant index (revocation looks tokens up by grant; a client's own token is revoked by its hash).
ALTER TABLE access_tokens ALTER COLUMN grant_id DROP NOT NULL;
DROP INDEX access_tokens_grant;
CREATE INDEX access_tokens_grant ON access_tokens(grant_id) WHERE grant_id IS NOT NULL;
