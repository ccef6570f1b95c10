-- What scheduling knows of a case: only what it needs to plan visits
-- (the visits themselves are tasks in the shared `tasks` table).
CREATE TABLE cases (
    case_id                 text PRIMARY KEY,
    hospital_id             text        NOT NULL,
    referral_id             text        NOT NULL,
    centre_id               text        NOT NULL,
    priority                text        NOT NULL,
    expected_discharge_date date        NOT NULL,
    reviewed                boolean     NOT NULL DEFAULT false,
    discharged_at           timestamptz,
    services_linked         boolean     NOT NULL DEFAULT false,
    hold_reason             text,
    closed                  boolean     NOT NULL DEFAULT false
);

-- A coordinator's own notes from a visit: free text, so kept here and never on topics.
CREATE TABLE visit_notes (
    task_id    bigint PRIMARY KEY REFERENCES tasks (id),
    notes      text        NOT NULL,
    written_at timestamptz NOT NULL DEFAULT now()
);
