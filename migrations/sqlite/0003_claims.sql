-- Claims (Core 5): further user claims (the rest of Core 5.1, language-tagged forms, custom claims) as a
-- JSON object; the `claims` request parameter (Core 5.5) carried with tokens; and the individually
-- requested claims a user consented to.
ALTER TABLE users ADD COLUMN claims TEXT NOT NULL DEFAULT '{}';
ALTER TABLE access_tokens ADD COLUMN claims TEXT;
ALTER TABLE refresh_tokens ADD COLUMN claims TEXT;
ALTER TABLE consents ADD COLUMN claims TEXT NOT NULL DEFAULT '[]';
