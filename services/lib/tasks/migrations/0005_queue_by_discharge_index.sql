-- carelink: no-transaction
-- The queue sorted by expected discharge, unknown dates last (ordering.NO_DISCHARGE,
-- which asyncpg sends as 'infinity').
CREATE INDEX CONCURRENTLY IF NOT EXISTS tasks_queue_discharge
    ON tasks (centre_id, (coalesce(expected_discharge_date, DATE 'infinity')), id)
    WHERE status IN ('open', 'claimed');
