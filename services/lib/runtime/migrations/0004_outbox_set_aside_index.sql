-- carelink: no-transaction
-- Rows the relay set aside are counted at every metrics scrape
-- (carelink_outbox_set_aside) and listed by `carelink outbox set-aside`. Without an
-- index that count would read every published row; this one holds only the set-aside
-- rows (normally none), so it stays tiny. Built CONCURRENTLY: handlers keep writing
-- the outbox while it reads the table once.
CREATE INDEX CONCURRENTLY IF NOT EXISTS outbox_set_aside ON outbox (id)
    WHERE published_at IS NULL AND failed_at IS NOT NULL;
