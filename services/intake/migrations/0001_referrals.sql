-- One row per (hospital, referral): the case id is allocated here and never changes.
-- `submission` holds the personal data; it lives only in this database and only
-- for referrals that were accepted (a refused referral keeps no personal data).
CREATE TABLE referrals (
    hospital_id   text        NOT NULL,
    referral_id   text        NOT NULL,
    case_id       text        NOT NULL UNIQUE,
    content_hash  text,
    outcome       text        NOT NULL,   -- accepted | rejected:<reason code>
    submission    jsonb,
    received_at   timestamptz NOT NULL DEFAULT now(),
    closed        boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (hospital_id, referral_id)
);

-- Later corrections, discharges and cancellations, with the hospital's own text.
CREATE TABLE referral_events (
    id           bigserial PRIMARY KEY,
    case_id      text        NOT NULL REFERENCES referrals (case_id),
    ce_type      text        NOT NULL,
    data         jsonb       NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX referral_events_case ON referral_events (case_id);

-- Matching a patient across hospitals and referrals: the key is a hash of
-- normalised name and birth date (never on topics); the person id is random
-- and opaque, and is what other services see.
CREATE TABLE persons (
    patient_key  text PRIMARY KEY,
    person_id    text NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now()
);
