-- PIPA art. 21 (issue 10): a case's personal data is destroyed after its closure plus the
-- policy's retention period, or at once when consent is withdrawn; every destruction is
-- recorded, never what was destroyed.
--
-- When a case closed: set by a trigger, so every path that closes a case (a closure seen
-- on care.cases, a cancellation, a refused referral's closed case, the batched path)
-- dates it without each having to remember. A case open again (a readmission reopens
-- nothing today, but the column must not lie) loses its date.
ALTER TABLE cases ADD COLUMN closed_at timestamptz;
ALTER TABLE cases ADD COLUMN personal_data_destroyed_at timestamptz;

CREATE FUNCTION cases_closed_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.open THEN
        NEW.closed_at := NULL;
    ELSIF NEW.closed_at IS NULL THEN
        NEW.closed_at := now();
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER cases_closed_at BEFORE INSERT OR UPDATE OF open ON cases
    FOR EACH ROW EXECUTE FUNCTION cases_closed_at();

-- A follow-up the hospital sends after the destruction is kept without its data: the
-- fact that it came (type, time) stays, what it said does not come back in.
CREATE FUNCTION referral_events_after_destruction() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM cases WHERE case_id = NEW.case_id
               AND personal_data_destroyed_at IS NOT NULL) THEN
        NEW.data := '{}'::jsonb;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER referral_events_after_destruction BEFORE INSERT ON referral_events
    FOR EACH ROW EXECUTE FUNCTION referral_events_after_destruction();

-- Cases closed before this migration: their closure is dated now, so their retention
-- period runs from today (later, never earlier, than the truth).
UPDATE cases SET closed_at = now() WHERE NOT open AND closed_at IS NULL;

-- The destruction log: which case, when, why and which fields (names, never values).
CREATE TABLE personal_data_destructions (
    id            bigserial   PRIMARY KEY,
    case_id       text        NOT NULL REFERENCES cases (case_id),
    reason        text        NOT NULL,   -- retention-expired | consent-withdrawn
    fields        text[]      NOT NULL,   -- e.g. {referrals.submission, case_exits.note}
    destroyed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX personal_data_destructions_case ON personal_data_destructions (case_id);
