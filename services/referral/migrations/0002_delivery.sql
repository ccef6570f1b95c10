-- Services ordered from providers and delivered (issue 9).

-- Where the case is and when the patient is expected home: the district picks the
-- contracted providers, the discharge date the default planned start. Null for cases
-- accepted before (the district then comes from the centre).
ALTER TABLE cases ADD COLUMN district text;
ALTER TABLE cases ADD COLUMN expected_discharge_date date;

-- Each line of a plan, ordered from one provider: ordered -> started -> ended
-- (delivered in full, in part or not at all), or cancelled with its case.
-- A line holds `planned_district_krw` of the person's annual cap while open and
-- `district_paid_krw` (of what was delivered) once ended.
CREATE TABLE plan_lines (
    id                   bigserial   UNIQUE,
    case_id              text        NOT NULL REFERENCES cases (case_id),
    line_no              int         NOT NULL,
    person_id            text        NOT NULL,
    policy_year          int         NOT NULL,
    service              text        NOT NULL,
    quantity             int         NOT NULL CHECK (quantity > 0),
    unit                 text        NOT NULL,
    planned_district_krw int         NOT NULL,
    provider_id          text        NOT NULL,
    planned_start        date        NOT NULL,
    ordered_on           date        NOT NULL,
    status               text        NOT NULL DEFAULT 'ordered'
                         CHECK (status IN ('ordered', 'started', 'ended', 'cancelled')),
    started_on           date,
    ended_on             date,
    delivered_units      int,
    end_reason           text,
    cost_krw             int,
    district_paid_krw    int,
    self_paid_krw        int,
    -- Who recorded the last step: a coordinator's username or `provider:<id>`.
    reported_by          text,
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (case_id, line_no)
);
CREATE INDEX plan_lines_person_year ON plan_lines (person_id, policy_year);
-- A provider's open lines (its listing).
CREATE INDEX plan_lines_provider ON plan_lines (provider_id, id) WHERE status IN ('ordered', 'started');
