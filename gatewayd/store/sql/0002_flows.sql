-- gatewayd schema v2: post-purchase flows (events, customers, orders, enrolments, sends,
-- short links and clicks). Times are UTC text from the daemon's clock, as in v1.

CREATE TABLE flow_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    customer_id TEXT,
    order_id TEXT,
    occurred_at TEXT NOT NULL,
    received_at TEXT NOT NULL,
    payload TEXT NOT NULL,
    -- 0 until its enrolments, exits and resumes are done: a crash in between is redone.
    processed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX flow_events_customer ON flow_events (customer_id, type, occurred_at);
CREATE INDEX flow_events_unprocessed ON flow_events (seq) WHERE processed = 0;

CREATE TABLE flow_customers (
    id TEXT PRIMARY KEY,
    phone TEXT NOT NULL,
    name TEXT,
    locale TEXT,
    timezone TEXT,
    country TEXT,
    consent_transactional INTEGER NOT NULL,
    consent_marketing INTEGER NOT NULL,
    consent_source TEXT,
    consent_at TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX flow_customers_phone ON flow_customers (phone);

CREATE TABLE flow_orders (
    id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    placed_at TEXT NOT NULL,
    status TEXT NOT NULL,
    total TEXT NOT NULL,
    currency TEXT NOT NULL,
    payload TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX flow_orders_customer ON flow_orders (customer_id, placed_at);

CREATE TABLE flow_enrolments (
    id TEXT PRIMARY KEY,
    flow TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    order_id TEXT,
    event_id TEXT NOT NULL,
    status TEXT NOT NULL,
    step INTEGER NOT NULL,
    due_at TEXT,
    waiting_for TEXT,
    started_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    exit_reason TEXT,
    UNIQUE (flow, event_id)
);
CREATE INDEX flow_enrolments_due ON flow_enrolments (due_at) WHERE status = 'active';
CREATE INDEX flow_enrolments_customer ON flow_enrolments (customer_id, status);

CREATE TABLE flow_sends (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    enrolment_id TEXT NOT NULL REFERENCES flow_enrolments (id),
    flow TEXT NOT NULL,
    step TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    phone TEXT NOT NULL,
    category TEXT NOT NULL,
    outcome TEXT NOT NULL,
    message_id TEXT,
    at TEXT NOT NULL,
    send_at TEXT NOT NULL
);
CREATE INDEX flow_sends_customer ON flow_sends (customer_id, send_at);
CREATE INDEX flow_sends_flow ON flow_sends (flow, at);
CREATE UNIQUE INDEX flow_sends_step ON flow_sends (enrolment_id, step);

CREATE TABLE flow_links (
    code TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    enrolment_id TEXT NOT NULL,
    step TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX flow_links_step ON flow_links (enrolment_id, step);

CREATE TABLE flow_clicks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    code TEXT NOT NULL REFERENCES flow_links (code),
    at TEXT NOT NULL,
    method TEXT NOT NULL,
    user_agent TEXT,
    counted INTEGER NOT NULL,
    reason TEXT
);
CREATE INDEX flow_clicks_code ON flow_clicks (code, counted);
