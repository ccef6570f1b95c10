-- Matching a patient across hospitals and referrals: the key is a hash of
-- normalised name and birth date (never on topics); the person id is random
-- and opaque, and is what other services see.
CREATE TABLE persons (
    patient_key  text PRIMARY KEY,
    person_id    text NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- A case: one person's episode of care. Several referrals may share it when
-- hospitals refer the same person while the case is open.
CREATE TABLE cases (
    case_id     text PRIMARY KEY,
    person_id   text,
    open        boolean     NOT NULL,
    discharged  boolean     NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cases_open_by_person ON cases (person_id) WHERE open;

-- One row per (hospital, referral). `submission` holds the personal data; it
-- lives only in this database and only for referrals we work on (a refused
-- referral keeps none).
CREATE TABLE referrals (
    hospital_id   text        NOT NULL,
    referral_id   text        NOT NULL,
    case_id       text        NOT NULL REFERENCES cases (case_id),
    content_hash  text,
    outcome       text        NOT NULL,   -- accepted | linked | rejected:<reason code>
    submission    jsonb,
    received_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (hospital_id, referral_id)
);
CREATE INDEX referrals_case ON referrals (case_id);

-- Later corrections, discharges and cancellations, with the hospital's own text.
CREATE TABLE referral_events (
    id           bigserial PRIMARY KEY,
    case_id      text        NOT NULL REFERENCES cases (case_id),
    ce_type      text        NOT NULL,
    data         jsonb       NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX referral_events_case ON referral_events (case_id);
