-- Customers in control: their preference choices and every decision the flow engine made
-- for them (the timeline of GET /v1/customers/{id}/timeline).
CREATE TABLE customer_preferences (
    customer_id TEXT PRIMARY KEY,
    kinds TEXT NOT NULL,            -- comma-separated message kinds
    frequency TEXT NOT NULL,        -- normal | reduced | essential
    source TEXT NOT NULL,           -- api | keyword | page
    updated_at TEXT NOT NULL
);

CREATE TABLE customer_timeline (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id TEXT NOT NULL,
    at TEXT NOT NULL,
    what TEXT NOT NULL,             -- sent | deferred | skipped | preferences
    reason TEXT,                    -- preference, cap, quiet_hours, no_consent, opted_out, ...
    flow TEXT,
    step TEXT,
    kind TEXT,
    message_id TEXT,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX customer_timeline_customer ON customer_timeline (customer_id, seq);
