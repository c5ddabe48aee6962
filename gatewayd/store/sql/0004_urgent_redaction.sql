-- otp and alert messages: once final (sent, delivered, failed, expired, cancelled,
-- unconfirmed) their text and PDUs (which carry the text) are wiped from the store.
-- A trigger, so every path that finishes a message redacts it in the same transaction.
CREATE TRIGGER redact_urgent AFTER UPDATE OF status ON messages
WHEN NEW.category IN ('otp', 'alert') AND NEW.status NOT IN ('queued', 'sending')
BEGIN
    UPDATE messages SET text = '' WHERE id = NEW.id AND text != '';
    UPDATE parts SET pdu = '' WHERE message_id = NEW.id AND pdu != '';
END;
