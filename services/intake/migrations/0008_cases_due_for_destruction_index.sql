-- carelink: no-transaction
-- The destruction job's search (0007): closed cases whose personal data is still here,
-- oldest closure first. Built concurrently: cases takes writes all day.
CREATE INDEX CONCURRENTLY IF NOT EXISTS cases_due_for_destruction ON cases (closed_at)
    WHERE NOT open AND personal_data_destroyed_at IS NULL;
