-- The hospital-facing state of each case: its current status and plan.
CREATE TABLE cases (
    case_id          text PRIMARY KEY,
    status           text,
    business_status  text,
    reason_code      text,
    reason           text,
    details          jsonb       NOT NULL DEFAULT '{}',
    plan             jsonb,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Every referral that follows a case (usually one; more when hospitals refer the
-- same person). `sequence` is the last one sent to that referral's hospital; the
-- next update takes sequence + 1 in the same transaction that writes it to the
-- outbox, so sequences never skip or repeat, across restarts too.
CREATE TABLE referrals (
    hospital_id  text NOT NULL,
    referral_id  text NOT NULL,
    case_id      text NOT NULL REFERENCES cases (case_id),
    sequence     int  NOT NULL DEFAULT 0,
    PRIMARY KEY (hospital_id, referral_id)
);
CREATE INDEX referrals_case ON referrals (case_id);
