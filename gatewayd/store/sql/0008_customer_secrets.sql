-- Secrets this install generates for itself (the key that signs preferences links).
CREATE TABLE customer_secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
