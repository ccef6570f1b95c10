-- What referral knows of a case (tasks live in the shared `tasks` table).
CREATE TABLE cases (
    case_id            text PRIMARY KEY,
    hospital_id        text        NOT NULL,
    referral_id        text        NOT NULL,
    person_id          text        NOT NULL,
    centre_id          text        NOT NULL,
    policy_year        int         NOT NULL,
    fee_support        text        NOT NULL,
    priority           text        NOT NULL,
    requested_services jsonb       NOT NULL,
    closed             boolean     NOT NULL DEFAULT false
);

-- One plan per case; the annual cap is summed over a person's plans of one policy year.
CREATE TABLE plans (
    case_id            text PRIMARY KEY REFERENCES cases (case_id),
    person_id          text        NOT NULL,
    policy_year        int         NOT NULL,
    lines              jsonb       NOT NULL,
    total_krw          int         NOT NULL,
    publicly_paid_krw  int         NOT NULL,
    self_paid_krw      int         NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX plans_person_year ON plans (person_id, policy_year);
