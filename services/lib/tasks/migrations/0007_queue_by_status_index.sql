-- carelink: no-transaction
-- A queue of finished or suspended work (status=done, cancelled, suspended): the
-- centre's tasks of that status, found without reading the others.
CREATE INDEX CONCURRENTLY IF NOT EXISTS tasks_centre_status
    ON tasks (centre_id, status, due_at, id);
