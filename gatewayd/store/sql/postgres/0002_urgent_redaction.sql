-- otp and alert messages: once final (sent, delivered, failed, expired, cancelled,
-- unconfirmed) their text and PDUs (which carry the text) are wiped from the store, in the
-- transaction that finished them (the same rule as SQLite's 0004_urgent_redaction.sql).
CREATE FUNCTION redact_urgent() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE messages SET text = '' WHERE id = NEW.id AND text <> '';
    UPDATE parts SET pdu = '' WHERE message_id = NEW.id AND pdu <> '';
    RETURN NULL;
END
$$;

CREATE TRIGGER redact_urgent AFTER UPDATE OF status ON messages
FOR EACH ROW WHEN (NEW.category IN ('otp', 'alert') AND NEW.status NOT IN ('queued', 'sending'))
EXECUTE FUNCTION redact_urgent();
