-- The portal's referrals: drafts as typed (form values, possibly incomplete), and
-- submissions as sent (the contract's JSON). Personal data: kept here because the
-- social workers' screens need it (docs/security.md), never in logs or events
-- other than the hospital's own referrals topic.
CREATE TABLE referrals (
    id            bigserial   PRIMARY KEY,
    hospital_id   text        NOT NULL,
    referral_id   text,
    state         text        NOT NULL CHECK (state IN ('draft', 'submitted')),
    form          jsonb       NOT NULL DEFAULT '{}',
    submission    jsonb,
    created_by    text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    submitted_at  timestamptz,
    CHECK ((state = 'submitted') = (submission IS NOT NULL AND referral_id IS NOT NULL))
);
-- A referral id is the hospital's: unique among its submitted referrals.
CREATE UNIQUE INDEX referrals_submitted_id ON referrals (hospital_id, referral_id)
    WHERE state = 'submitted';
CREATE INDEX referrals_by_hospital ON referrals (hospital_id, updated_at DESC);

-- Every hospital event the portal sent, with who sent it: the referral page lists
-- them beside the updates, and they are the audit trail of the portal's actions.
CREATE TABLE sent_events (
    id           bigserial   PRIMARY KEY,
    hospital_id  text        NOT NULL,
    referral_id  text        NOT NULL,
    ce_type      text        NOT NULL,
    ce_id        text        NOT NULL UNIQUE,
    data         jsonb       NOT NULL,
    sent_by      text        NOT NULL,
    sent_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sent_events_by_referral ON sent_events (hospital_id, referral_id, id);
