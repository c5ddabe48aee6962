-- gatewayd PostgreSQL schema v1: the SQLite schema's tables and columns, plus what several
-- nodes need (claims with epochs and leases, node and SIM ownership, a shared queue depth).
-- Business times are the daemon's clock as fixed-width UTC text, exactly as in SQLite (one
-- clock; export/import copies rows verbatim); lease and heartbeat times are the database's
-- clock (timestamptz from clock_timestamp()), the one clock every node shares.

CREATE TABLE messages (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    recipient TEXT NOT NULL,
    recipient_digits TEXT NOT NULL,
    text TEXT NOT NULL,
    category TEXT NOT NULL,
    priority INTEGER NOT NULL,
    status TEXT NOT NULL,
    encoding TEXT NOT NULL,
    segments INTEGER NOT NULL,
    replaced_chars TEXT NOT NULL,
    send_at TEXT NOT NULL,
    expires_at TEXT,
    modem TEXT,
    pool TEXT,
    metadata TEXT,
    callback_url TEXT,
    force_ucs2 INTEGER NOT NULL,
    smart INTEGER NOT NULL,
    optout_exempt INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    next_attempt_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    identity TEXT,
    bound_until TEXT,
    avoid_identity TEXT,
    error_code TEXT,
    error_text TEXT,
    stray_part_possible INTEGER NOT NULL DEFAULT 0,
    -- The claim: which node sends it, under which epoch (every write of an outcome checks
    -- it), and until when (database clock) before another node may take it over.
    claim_node TEXT,
    claim_epoch BIGINT,
    lease_until TIMESTAMPTZ
);
CREATE INDEX messages_queue ON messages (priority DESC, send_at, seq) WHERE status = 'queued';
CREATE INDEX messages_recipient ON messages (recipient, status);
CREATE INDEX messages_status ON messages (status, seq);
CREATE INDEX messages_expiry ON messages (expires_at) WHERE status = 'queued';
CREATE INDEX messages_lease ON messages (lease_until) WHERE status = 'sending';

CREATE SEQUENCE claim_epochs;

CREATE TABLE parts (
    message_id TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    pdu TEXT NOT NULL,
    tpdu_length INTEGER NOT NULL,
    status TEXT NOT NULL,
    identity TEXT,
    mr INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    error_code TEXT,
    error_text TEXT,
    sent_at TEXT,
    delivered_at TEXT,
    report_status INTEGER,
    report_at TEXT,
    PRIMARY KEY (message_id, seq)
);
CREATE INDEX parts_report ON parts (identity, mr, sent_at) WHERE status IN ('sent', 'report_timeout');
CREATE INDEX parts_sent_at ON parts (sent_at) WHERE status = 'sent';
CREATE INDEX parts_sending ON parts (status) WHERE status = 'sending';

CREATE TABLE history (
    seq BIGSERIAL PRIMARY KEY,
    message_id TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    part_seq INTEGER,
    status TEXT NOT NULL,
    at TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX history_message ON history (message_id, seq);

CREATE TABLE idempotency_keys (
    key TEXT PRIMARY KEY,
    message_id TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    request_hash TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE optouts (
    seq BIGSERIAL PRIMARY KEY,
    number TEXT NOT NULL UNIQUE,
    scope TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE inbound_messages (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    identity TEXT NOT NULL,
    modem TEXT NOT NULL,
    sender TEXT NOT NULL,
    concat_ref INTEGER,
    concat_total INTEGER NOT NULL,
    status TEXT NOT NULL,
    text TEXT NOT NULL,
    first_received_at TEXT NOT NULL,
    completed_at TEXT,
    processed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX inbound_partial ON inbound_messages (identity, sender, concat_ref, concat_total)
    WHERE status = 'partial';

CREATE TABLE inbound_parts (
    inbound_id TEXT NOT NULL REFERENCES inbound_messages (id) ON DELETE CASCADE,
    part_seq INTEGER NOT NULL,
    identity TEXT NOT NULL,
    sender TEXT NOT NULL,
    scts TEXT NOT NULL,
    pdu_hash TEXT NOT NULL,
    text TEXT NOT NULL,
    received_at TEXT NOT NULL,
    -- Two nodes (or a sweep and a URC) reading the same SMS store it once.
    UNIQUE (identity, sender, scts, pdu_hash)
);
CREATE INDEX inbound_parts_message ON inbound_parts (inbound_id, part_seq);

CREATE TABLE webhook_outbox (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    url TEXT NOT NULL,
    event TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at TEXT NOT NULL,
    last_error TEXT,
    created_at TEXT NOT NULL,
    delivered_at TEXT
);
CREATE INDEX webhook_due ON webhook_outbox (next_at) WHERE status = 'pending';
CREATE INDEX webhook_failed ON webhook_outbox (seq) WHERE status = 'failed';

CREATE TABLE unmatched_reports (
    seq BIGSERIAL PRIMARY KEY,
    identity TEXT NOT NULL,
    mr INTEGER NOT NULL,
    recipient TEXT NOT NULL,
    status INTEGER NOT NULL,
    status_text TEXT NOT NULL,
    discharge_time TEXT NOT NULL,
    received_at TEXT NOT NULL
);

CREATE TABLE send_log (
    id BIGSERIAL PRIMARY KEY,
    identity TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX send_log_at ON send_log (at);
CREATE INDEX send_log_identity ON send_log (identity, at);

CREATE TABLE sticky_recipients (
    recipient TEXT PRIMARY KEY,
    identity TEXT NOT NULL,
    at TEXT NOT NULL
);

-- One row per running node: a second process with the same node name refuses to start
-- while the first one's heartbeat is fresh.
CREATE TABLE nodes (
    node TEXT PRIMARY KEY,
    epoch BIGINT NOT NULL,
    heartbeat TIMESTAMPTZ NOT NULL
);

-- Which node drives which SIM (DESIGN: Identity, the ICCID): a node that finds an ICCID
-- owned by another live node refuses to send with it.
CREATE TABLE sim_owners (
    identity TEXT PRIMARY KEY,
    node TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    heartbeat TIMESTAMPTZ NOT NULL
);

-- Messages queued or sending, kept by every transaction that changes it (never a scan of
-- messages): the depth is the sum of the stripes, and each transaction adds its change to
-- one stripe at random, so concurrent commits (of all nodes) seldom wait for each other.
CREATE TABLE queue_depth (
    stripe INTEGER PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO queue_depth (stripe, value) SELECT s, 0 FROM generate_series(0, 15) AS s;
