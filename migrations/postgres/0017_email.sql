-- Password resets look accounts up by address (issue 13).
CREATE INDEX users_by_email ON users (lower(email));
