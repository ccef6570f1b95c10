-- The FHIR Task state machine (hospital contract v1, revision 2).
--
-- cases.path: the case's legal chain of statuses as the hospital sees it, the latest
-- update of each (received/triaged, accepted/reviewed, in-progress/…, on-hold/…): a
-- referral joining the case is brought along it, and its last entry is the current
-- status (an on-hold entry's predecessor is the status the hold left).
-- referrals.status / held_from: where each referral's own feed stands, so every update
-- is checked against what that hospital has been told.
ALTER TABLE cases ADD COLUMN path jsonb NOT NULL DEFAULT '[]';
ALTER TABLE referrals ADD COLUMN status text;
ALTER TABLE referrals ADD COLUMN held_from text;

-- Rows written before: their current status is the whole known chain.
UPDATE cases
   SET path = jsonb_build_array(jsonb_build_object(
           'status', status, 'business_status', business_status, 'reason_code', reason_code,
           'reason', reason, 'details', details))
 WHERE status IS NOT NULL;
UPDATE referrals r
   SET status = c.status
  FROM cases c
 WHERE c.case_id = r.case_id AND r.sequence > 0;
