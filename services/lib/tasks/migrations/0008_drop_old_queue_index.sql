-- carelink: no-transaction
-- (centre_id, due_at) of 0001 is the prefix of tasks_queue_deadline: one index less to
-- keep up to date on every task change.
DROP INDEX CONCURRENTLY IF EXISTS tasks_queue;
