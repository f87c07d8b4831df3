-- Several accounts per browser: the account the user picked on the account chooser during a flow
-- (prompt=select_account, Core 3.1.2.1), as login_sid records a login during the flow.
ALTER TABLE pending_authorizations ADD COLUMN chosen_sid TEXT;

-- The account page revokes an app: its refresh tokens are found by user and client.
CREATE INDEX refresh_tokens_user_client ON refresh_tokens(user_id, client_id);
