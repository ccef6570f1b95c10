-- carelink: no-transaction
-- The queue sorted by deadline (and the overdue filter, a range of it).
CREATE INDEX CONCURRENTLY IF NOT EXISTS tasks_queue_deadline
    ON tasks (centre_id, due_at, id) WHERE status IN ('open', 'claimed');
