-- additive
-- Reads of the inbox and of monthly quotas (gatewayd.store.conversations_postgres,
-- gatewayd.store.quota_postgres): a number's inbound thread, and a SIM's parts sent since
-- the month began (parts_report covers only parts still waiting for their report).
CREATE INDEX inbound_sender ON inbound_messages (sender, first_received_at);
CREATE INDEX parts_identity_sent ON parts (identity, sent_at) WHERE sent_at IS NOT NULL;
