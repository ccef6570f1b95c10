-- The queue people work from (issue 10): each task carries the case facts its queue
-- row shows, filters on and sorts by, so one index serves a page without joining
-- anything. Both are non-personal facts the owning service already keeps in its
-- `cases` table: the hospital, and the expected discharge date (kept current on every
-- task of the case when the hospital moves it: operations.set_expected_discharge).
ALTER TABLE tasks ADD COLUMN hospital_id text;
ALTER TABLE tasks ADD COLUMN expected_discharge_date date;

-- Tasks created before this migration take the facts from the service's `cases` table,
-- when it is already there (this library's migrations run before the service's own, so a
-- fresh database has neither cases nor tasks yet).
DO $$
BEGIN
    IF to_regclass('cases') IS NOT NULL THEN
        EXECUTE 'UPDATE tasks t SET hospital_id = c.hospital_id FROM cases c
                 WHERE c.case_id = t.case_id';
        IF EXISTS (SELECT 1 FROM information_schema.columns
                   WHERE table_name = 'cases' AND column_name = 'expected_discharge_date'
                     AND table_schema = current_schema()) THEN
            EXECUTE 'UPDATE tasks t SET expected_discharge_date = c.expected_discharge_date
                     FROM cases c WHERE c.case_id = t.case_id';
        END IF;
    END IF;
END
$$;
