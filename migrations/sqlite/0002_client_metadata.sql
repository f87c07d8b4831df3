-- Client registration metadata beyond the core columns (Dynamic Registration 1.0 2), as one JSON
-- object: allowed response types, subject type, request object and response signing/encryption
-- preferences. New fields get serde defaults, so adding one needs no migration.
ALTER TABLE clients ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}';
