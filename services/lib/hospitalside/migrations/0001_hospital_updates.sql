-- The status updates a gateway read from hospital.<id>.updates, one row per
-- (hospital, referral, sequence): the contract's sequence is the order, and a
-- repeated record (at-least-once delivery) lands on the same key and is dropped.
CREATE TABLE hospital_updates (
    hospital_id     text        NOT NULL,
    referral_id     text        NOT NULL,
    sequence        integer     NOT NULL CHECK (sequence >= 1),
    case_id         text        NOT NULL,
    status          text        NOT NULL,
    business_status text        NOT NULL,
    reason_code     text,
    occurred_at     timestamptz NOT NULL,
    -- The update's data as the contract defines it (no personal data: outcome keeps none).
    data            jsonb       NOT NULL,
    event_id        text        NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (hospital_id, referral_id, sequence)
);

-- Records on an updates topic that are not a readable update (not JSON, not the
-- contract): noted with where they are, never dropped
-- silently. The record itself stays on the topic (30 days) at that offset.
CREATE TABLE hospital_unreadable_updates (
    id          bigserial   PRIMARY KEY,
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    "offset"    bigint      NOT NULL,
    error       text        NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (topic, partition, "offset")
);
