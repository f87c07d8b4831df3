-- DPoP (RFC 9449): the thumbprint of the key a token is bound to (NULL: a bearer token).
ALTER TABLE access_tokens ADD COLUMN jkt TEXT;
ALTER TABLE refresh_tokens ADD COLUMN jkt TEXT;
