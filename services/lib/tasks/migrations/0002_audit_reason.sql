-- A coordinator's exit on a task (issue 10: reopening an unreachable visit, correcting
-- fee support) is audited with its coded reason and the note they wrote; the note stays
-- in the owning service's store.
ALTER TABLE task_audit ADD COLUMN reason_code text;
ALTER TABLE task_audit ADD COLUMN note text;
