-- additive
-- The number of the latest webhook event about each message: nodes (and retries) may post a
-- message's events out of order, so each carries its place (`sequence` in the payload).
ALTER TABLE messages ADD COLUMN event_seq INTEGER NOT NULL DEFAULT 0;
