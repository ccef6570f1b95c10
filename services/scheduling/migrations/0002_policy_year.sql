-- The policy year intake chose for the case (CaseAccepted.policy_year): its policy file's
-- deadline rules date the visits (issue 10). NULL for a case accepted before this column:
-- the rules of the policy in force on the day are used.
ALTER TABLE cases ADD COLUMN policy_year integer;
