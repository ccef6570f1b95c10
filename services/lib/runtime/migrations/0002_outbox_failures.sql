-- Rows the broker refuses for good (too large, a bad topic) are set aside with the
-- reason instead of blocking every later row of the service.
ALTER TABLE outbox ADD COLUMN failed_at timestamptz, ADD COLUMN error text;
DROP INDEX outbox_unpublished;
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL AND failed_at IS NULL;
