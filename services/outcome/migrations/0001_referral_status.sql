-- The hospital-facing state of each referral. `sequence` is the last one sent;
-- the next update takes sequence + 1 in the same transaction that writes it to
-- the outbox, so sequences never skip or repeat, across restarts too.
CREATE TABLE referral_status (
    case_id          text PRIMARY KEY,
    hospital_id      text        NOT NULL,
    referral_id      text        NOT NULL,
    sequence         int         NOT NULL DEFAULT 0,
    status           text,
    business_status  text,
    reason_code      text,
    reason           text,
    details          jsonb       NOT NULL DEFAULT '{}',
    plan             jsonb,
    post_visit_done  boolean     NOT NULL DEFAULT false,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX referral_status_by_referral ON referral_status (hospital_id, referral_id);
