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

-- Coordinators' work: review a referral, set a care plan.
CREATE TABLE tasks (
    id            bigserial PRIMARY KEY,
    case_id       text        NOT NULL REFERENCES cases (case_id),
    kind          text        NOT NULL CHECK (kind IN ('review', 'care-plan')),
    centre_id     text        NOT NULL,
    priority      text        NOT NULL,
    due_at        timestamptz NOT NULL,
    status        text        NOT NULL DEFAULT 'open'
                  CHECK (status IN ('open', 'claimed', 'done', 'cancelled')),
    claimed_by    text,
    lease_until   timestamptz,
    result        jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    completed_at  timestamptz,
    UNIQUE (case_id, kind)
);
-- A centre's queue: open work ordered by deadline.
CREATE INDEX tasks_queue ON tasks (centre_id, due_at) WHERE status IN ('open', 'claimed');

-- One plan per case; the cap is summed over a person's plans of one policy year.
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
