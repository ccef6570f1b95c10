-- carelink: no-transaction
-- The retention job deletes inbox rows last written more than CARELINK_INBOX_RETENTION_DAYS
-- ago, oldest first, a batch at a time: this index finds them without reading the table.
-- Built CONCURRENTLY, as 0005.
CREATE INDEX CONCURRENTLY IF NOT EXISTS inbox_handled_at ON inbox (handled_at);
