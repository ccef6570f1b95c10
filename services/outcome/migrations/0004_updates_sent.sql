-- Every update outcome sent to a hospital, with its sequence (issue 10): the case page's
-- timeline reads them here (GET /v1/cases/{id}/updates). Written in the transaction that
-- puts the update in the outbox, so the two never disagree; the outbox forgets published
-- rows after its retention, this table keeps them as the hospital's feed had them. An
-- update carries no personal data (the hospital contract's own rule).
CREATE TABLE updates_sent (
    hospital_id      text        NOT NULL,
    referral_id      text        NOT NULL,
    sequence         int         NOT NULL,
    case_id          text        NOT NULL,
    status           text        NOT NULL,
    business_status  text        NOT NULL,
    reason_code      text,
    reason           text,
    reason_ko        text,
    occurred_at      timestamptz NOT NULL,
    details          jsonb       NOT NULL DEFAULT '{}',
    PRIMARY KEY (hospital_id, referral_id, sequence)
);
CREATE INDEX updates_sent_case ON updates_sent (case_id);
