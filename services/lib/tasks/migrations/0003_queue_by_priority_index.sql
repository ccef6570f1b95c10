-- carelink: no-transaction
-- The queue's default order, urgent first then by deadline, with the id that makes
-- it total: a page is one range scan of this index from the cursor (ordering.py).
CREATE INDEX CONCURRENTLY IF NOT EXISTS tasks_queue_priority
    ON tasks (centre_id, (priority <> 'urgent'), due_at, id) WHERE status IN ('open', 'claimed');
