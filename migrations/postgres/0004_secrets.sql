-- Secrets the OP derives values from and every node must share (e.g. the pairwise subject salt,
-- Core 8.1). Created once, by whichever node starts first.
CREATE TABLE secrets (
    name TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
