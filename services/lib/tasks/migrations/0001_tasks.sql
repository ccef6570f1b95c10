CREATE TABLE tasks (
    id             bigserial PRIMARY KEY,
    case_id        text        NOT NULL,
    kind           text        NOT NULL,
    centre_id      text        NOT NULL,
    priority       text        NOT NULL CHECK (priority IN ('routine', 'urgent')),
    due_at         timestamptz NOT NULL,
    window_start   timestamptz,
    status         text        NOT NULL DEFAULT 'open'
                   CHECK (status IN ('open', 'claimed', 'done', 'cancelled', 'suspended')),
    claimed_by     text,
    lease_until    timestamptz,
    attempts       int         NOT NULL DEFAULT 0,
    result         jsonb,
    created_at     timestamptz NOT NULL DEFAULT now(),
    completed_at   timestamptz,
    completed_by   text,
    escalated_at   timestamptz,
    -- One live task of a kind per case; a done or cancelled one may be followed by a new one.
    generation     int         NOT NULL DEFAULT 1,
    UNIQUE (case_id, kind, generation)
);
-- A centre's queue: open and claimed work ordered by urgency and deadline.
CREATE INDEX tasks_queue ON tasks (centre_id, due_at) WHERE status IN ('open', 'claimed');
CREATE INDEX tasks_case ON tasks (case_id);
-- The deadline watcher only looks at unescalated live tasks.
CREATE INDEX tasks_overdue ON tasks (due_at) WHERE status IN ('open', 'claimed') AND escalated_at IS NULL;

-- Who did what, when: every task operation.
CREATE TABLE task_audit (
    id          bigserial PRIMARY KEY,
    task_id     bigint      NOT NULL REFERENCES tasks (id),
    actor       text        NOT NULL,
    action      text        NOT NULL,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX task_audit_task ON task_audit (task_id);
