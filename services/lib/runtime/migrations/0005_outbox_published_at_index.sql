-- carelink: no-transaction
-- The retention job (services/lib/runtime/retention.py) deletes published rows older
-- than CARELINK_OUTBOX_RETENTION_HOURS, oldest first, a batch at a time: this index finds
-- them without reading the table. Built CONCURRENTLY (handlers keep writing the outbox
-- while it is built); the runner drops and rebuilds an invalid leftover of a failed build.
CREATE INDEX CONCURRENTLY IF NOT EXISTS outbox_published_at ON outbox (published_at)
    WHERE published_at IS NOT NULL;
