-- Claimed inbound messages are `processing`, not `sending`: nothing is sent, a runner reads
-- them and applies what they report. The partial index of leased rows follows the status.
UPDATE inbound_messages SET status = 'processing' WHERE status = 'sending';
DROP INDEX inbound_messages_leased;
CREATE INDEX inbound_messages_leased ON inbound_messages (lease_until) WHERE status = 'processing';
