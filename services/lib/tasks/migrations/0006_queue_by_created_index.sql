-- carelink: no-transaction
-- The queue sorted by creation, oldest first.
CREATE INDEX CONCURRENTLY IF NOT EXISTS tasks_queue_created
    ON tasks (centre_id, created_at, id) WHERE status IN ('open', 'claimed');
