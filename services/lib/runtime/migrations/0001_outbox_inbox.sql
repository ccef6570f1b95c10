-- The transactional outbox: handlers insert the records they emit in the same
-- transaction as their state change; only the relay publishes them.
CREATE TABLE outbox (
    id           bigserial PRIMARY KEY,
    topic        text        NOT NULL,
    key          bytea,
    value        bytea       NOT NULL,
    headers      jsonb       NOT NULL DEFAULT '[]',
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
-- The relay reads unpublished rows in id order; a partial index keeps that
-- query cheap however many published rows pile up.
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

-- The inbox: one row per (consumer, event) handled, written in the handler's
-- transaction, so a redelivered event is recognised and skipped.
CREATE TABLE inbox (
    consumer   text        NOT NULL,
    event_id   text        NOT NULL,
    status     text        NOT NULL DEFAULT 'handled' CHECK (status IN ('handled', 'dead-lettered')),
    handled_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
