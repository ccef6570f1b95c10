-- What scheduling knows of a case: only what it needs to plan visits.
CREATE TABLE cases (
    case_id                 text PRIMARY KEY,
    hospital_id             text        NOT NULL,
    referral_id             text        NOT NULL,
    centre_id               text        NOT NULL,
    priority                text        NOT NULL,
    expected_discharge_date date        NOT NULL,
    discharged_at           timestamptz,
    services_linked         boolean     NOT NULL DEFAULT false,
    closed                  boolean     NOT NULL DEFAULT false
);

-- A visit is a coordinator's task with a time window.
CREATE TABLE visits (
    id            bigserial PRIMARY KEY,
    case_id       text        NOT NULL REFERENCES cases (case_id),
    kind          text        NOT NULL CHECK (kind IN ('pre-discharge', 'post-discharge')),
    window_start  timestamptz NOT NULL,
    window_end    timestamptz NOT NULL,
    status        text        NOT NULL DEFAULT 'open',
    result        jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    completed_at  timestamptz,
    UNIQUE (case_id, kind)
);
CREATE INDEX visits_open_by_deadline ON visits (window_end) WHERE status = 'open';
