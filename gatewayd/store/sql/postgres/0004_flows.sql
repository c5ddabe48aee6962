-- additive
-- Flows (SQLite's 0002, 0005, 0006, 0007, 0008): events, customers, orders, enrolments,
-- sends, short links and clicks, preferences and the timeline, survey answers, secrets.
-- Columns as in SQLite (business times are UTC text, flags integers, totals decimal text),
-- plus what several nodes need: an event's and an enrolment's claim (node, epoch, lease
-- on the database clock) so that one node processes an event and runs a step.

CREATE TABLE flow_events (
    seq BIGSERIAL PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    customer_id TEXT,
    order_id TEXT,
    occurred_at TEXT NOT NULL,
    received_at TEXT NOT NULL,
    payload TEXT NOT NULL,
    -- 0 until its enrolments, exits and resumes are done: a crash in between is redone.
    processed INTEGER NOT NULL DEFAULT 0,
    -- The node processing it, until when: the same event posted to another node meanwhile
    -- is a duplicate; after the lease (a dead node) another node's recovery takes it.
    claim_node TEXT,
    lease_until TIMESTAMPTZ
);
CREATE INDEX flow_events_customer ON flow_events (customer_id, type, occurred_at);
CREATE INDEX flow_events_unprocessed ON flow_events (seq) WHERE processed = 0;
CREATE INDEX flow_events_order ON flow_events (order_id, type);

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
    -- Insertion order (SQLite's rowid): ties of due_at and started_at run in it.
    seq BIGSERIAL NOT NULL UNIQUE,
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
    -- The node running its due step, under which epoch (its move checks it), until when.
    claim_node TEXT,
    claim_epoch BIGINT,
    lease_until TIMESTAMPTZ,
    UNIQUE (flow, event_id)
);
CREATE INDEX flow_enrolments_due ON flow_enrolments (due_at) WHERE status IN ('active', 'waiting');
CREATE INDEX flow_enrolments_customer ON flow_enrolments (customer_id, status);

CREATE TABLE flow_sends (
    seq BIGSERIAL PRIMARY KEY,
    enrolment_id TEXT NOT NULL REFERENCES flow_enrolments (id),
    flow TEXT NOT NULL,
    step TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    phone TEXT NOT NULL,
    category TEXT NOT NULL,
    outcome TEXT NOT NULL,
    message_id TEXT,
    at TEXT NOT NULL,
    send_at TEXT NOT NULL,
    variant TEXT
);
CREATE INDEX flow_sends_customer ON flow_sends (customer_id, send_at);
CREATE INDEX flow_sends_flow ON flow_sends (flow, at);
-- One record per enrolment and step: two nodes never both record a step's send.
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
    seq BIGSERIAL PRIMARY KEY,
    code TEXT NOT NULL REFERENCES flow_links (code),
    at TEXT NOT NULL,
    method TEXT NOT NULL,
    user_agent TEXT,
    counted INTEGER NOT NULL,
    reason TEXT
);
CREATE INDEX flow_clicks_code ON flow_clicks (code, counted);

CREATE TABLE customer_preferences (
    customer_id TEXT PRIMARY KEY,
    kinds TEXT NOT NULL,
    frequency TEXT NOT NULL,
    source TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE customer_timeline (
    seq BIGSERIAL PRIMARY KEY,
    customer_id TEXT NOT NULL,
    at TEXT NOT NULL,
    what TEXT NOT NULL,
    reason TEXT,
    flow TEXT,
    step TEXT,
    kind TEXT,
    message_id TEXT,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX customer_timeline_customer ON customer_timeline (customer_id, seq);

CREATE TABLE survey_answers (
    enrolment_id TEXT NOT NULL,
    step TEXT NOT NULL,
    answer TEXT NOT NULL,
    inbound_id TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (enrolment_id, step)
);

CREATE TABLE customer_secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
