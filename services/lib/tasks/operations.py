"""Task operations: what a coordinator (or the staff simulator) does with a task.

Every operation runs on the caller's connection inside the caller's
transaction, so a use case completes a task and emits its case events
atomically. `create_many` creates a set of tasks with a statement per table (a
batch of accepted cases, issue 12); `create` is `create_many` of one. Exclusivity comes from conditional UPDATEs: of two concurrent
claims, PostgreSQL lets exactly one UPDATE match `status = 'open'`.

Lock order: a transaction that touches a case and its tasks locks the case row
first, then the tasks. The consumers of case events do so naturally (they start
from the case); a coordinator's action starts from a task, so it reads the
task's case id without a lock (`case_id_of`), locks the case (the service's
store), then the task (`lock`), and lets the conditional UPDATEs below re-check
the task's state. Taken the other way round, an action and a consumer on the
same case wait for each other and PostgreSQL aborts one of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import asyncpg

from services.lib.tasks.ordering import DEFAULT_SORT, Cursor, Sort

DEFAULT_LEASE = timedelta(minutes=30)
# The actor in the audit log for what the case's events did, not a person.
SYSTEM = "system"
LIVE = ("open", "claimed")


@dataclass(frozen=True)
class Task:
    id: int
    case_id: str
    kind: str
    centre_id: str
    priority: str
    due_at: datetime
    window_start: datetime | None
    status: str
    claimed_by: str | None
    lease_until: datetime | None
    attempts: int
    result: dict[str, Any] | None
    created_at: datetime
    completed_at: datetime | None
    completed_by: str | None
    # The case's non-personal facts the queue shows, filters on and sorts by (issue 10).
    hospital_id: str | None = None
    expected_discharge_date: date | None = None

    def overdue(self, now: datetime) -> bool:
        return self.status in LIVE and self.due_at < now

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Task:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


class TaskError(Exception):
    """A task operation that cannot be done; `code` is stable for interfaces."""

    code = "task-error"


class TaskNotFound(TaskError):
    code = "not-found"


class ClaimedByOther(TaskError):
    code = "claimed-by-other"


class LeaseExpired(TaskError):
    code = "lease-expired"


class NotClaimed(TaskError):
    code = "not-claimed"


class TaskClosed(TaskError):
    code = "task-closed"


_COLUMNS = ", ".join(Task.__dataclass_fields__)


@dataclass(frozen=True)
class NewTask:
    """A task to create (`create_many`): what `create` takes, as one value."""

    case_id: str
    kind: str
    centre_id: str
    priority: str
    due_at: datetime
    window_start: datetime | None = None
    hospital_id: str | None = None
    expected_discharge_date: date | None = None


async def create(
    conn: asyncpg.Connection,
    *,
    case_id: str,
    kind: str,
    centre_id: str,
    priority: str,
    due_at: datetime,
    window_start: datetime | None = None,
    hospital_id: str | None = None,
    expected_discharge_date: date | None = None,
) -> Task | None:
    """A new task, unless one of this kind is already live for the case (idempotent);
    `create_many` of one, so the two can never differ."""
    new = NewTask(
        case_id=case_id,
        kind=kind,
        centre_id=centre_id,
        priority=priority,
        due_at=due_at,
        window_start=window_start,
        hospital_id=hospital_id,
        expected_discharge_date=expected_discharge_date,
    )
    return (await create_many(conn, [new]))[0]


def _lock_key(case_id: str, kind: str) -> str:
    return f"task:{case_id}:{kind}"


async def create_many(conn: asyncpg.Connection, new: Sequence[NewTask]) -> list[Task | None]:
    """Create each task unless one of its kind is already live for its case, as that many
    `create` calls in this order would: one task each, None for those that were live
    (a (case, kind) twice in `new`: the first is created, the second finds it live).

    A transaction-scoped advisory lock per (case, kind) makes check-then-insert safe
    when two transactions create the same task at once. The set's locks are taken in
    one statement in ascending lock-id order, the same order in every transaction, so
    two instances creating overlapping sets wait for each other instead of deadlocking.
    Then one query for the live ones, one INSERT for the tasks, one for their audit rows.
    """
    if not new:
        return []
    await conn.execute(
        """SELECT pg_advisory_xact_lock(k)
           FROM (SELECT DISTINCT hashtext(key) AS k FROM unnest($1::text[]) AS key ORDER BY k) s""",
        [_lock_key(t.case_id, t.kind) for t in new],
    )
    wanted = {(t.case_id, t.kind) for t in new}
    # By case id alone, so the plan is always the tasks_case index; the kinds are
    # matched here.
    live = {
        (row["case_id"], row["kind"])
        for row in await conn.fetch(
            """SELECT case_id, kind FROM tasks
               WHERE case_id = ANY($1::text[]) AND status IN ('open', 'claimed', 'suspended')""",
            sorted({t.case_id for t in new}),
        )
    } & wanted
    # The ones to create, first of each (case, kind) only: a later one finds it live.
    chosen: list[NewTask] = []
    for task in new:
        if (task.case_id, task.kind) not in live:
            live.add((task.case_id, task.kind))
            chosen.append(task)
    created: dict[tuple[str, str], Task] = {}
    if chosen:
        # Inserted in `new`'s order (ORDER BY n.ord), so ids and audit rows come in the
        # order single creates would give them.
        rows = await conn.fetch(
            f"""INSERT INTO tasks (case_id, kind, centre_id, priority, due_at, window_start,
                                   generation, hospital_id, expected_discharge_date)
                SELECT n.case_id, n.kind, n.centre_id, n.priority, n.due_at, n.window_start,
                       (SELECT coalesce(max(t.generation), 0) + 1 FROM tasks t
                         WHERE t.case_id = n.case_id AND t.kind = n.kind),
                       n.hospital_id, n.expected_discharge_date
                FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],
                            $6::timestamptz[], $7::text[], $8::date[])
                     WITH ORDINALITY AS n (case_id, kind, centre_id, priority, due_at,
                                           window_start, hospital_id, expected_discharge_date,
                                           ord)
                ORDER BY n.ord
                RETURNING {_COLUMNS}""",
            [t.case_id for t in chosen],
            [t.kind for t in chosen],
            [t.centre_id for t in chosen],
            [t.priority for t in chosen],
            [t.due_at for t in chosen],
            [t.window_start for t in chosen],
            [t.hospital_id for t in chosen],
            [t.expected_discharge_date for t in chosen],
        )
        tasks = sorted((Task.from_row(row) for row in rows), key=lambda t: t.id)
        await conn.execute(
            """INSERT INTO task_audit (task_id, actor, action)
               SELECT id, $2, 'create' FROM unnest($1::bigint[]) WITH ORDINALITY AS a (id, ord)
               ORDER BY ord""",
            [t.id for t in tasks],
            SYSTEM,
        )
        created = {(t.case_id, t.kind): t for t in tasks}
    return [created.pop((t.case_id, t.kind), None) for t in new]


async def get(conn: asyncpg.Connection, task_id: int) -> Task:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM tasks WHERE id = $1", task_id)
    if row is None:
        raise TaskNotFound(f"no task {task_id}")
    return Task.from_row(row)


async def case_id_of(conn: asyncpg.Connection, task_id: int) -> str:
    """The task's case, read without a lock so the caller can lock the case first.

    A task never changes case, so the id stays right after the locks are taken."""
    case_id: str | None = await conn.fetchval("SELECT case_id FROM tasks WHERE id = $1", task_id)
    if case_id is None:
        raise TaskNotFound(f"no task {task_id}")
    return case_id


async def lock(conn: asyncpg.Connection, task_id: int) -> Task:
    """The task, locked until the transaction ends; lock its case before (see above)."""
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM tasks WHERE id = $1 FOR UPDATE", task_id)
    if row is None:
        raise TaskNotFound(f"no task {task_id}")
    return Task.from_row(row)


async def for_case(conn: asyncpg.Connection, case_id: str) -> list[Task]:
    rows = await conn.fetch(f"SELECT {_COLUMNS} FROM tasks WHERE case_id = $1 ORDER BY id", case_id)
    return [Task.from_row(r) for r in rows]


# Each sort's key as SQL, written exactly as its index (migrations 0003-0006) is, so a
# page is one range scan of that index from the cursor.
_SORT_SQL: dict[str, tuple[str, ...]] = {
    "priority": ("(priority <> 'urgent')", "due_at"),
    "deadline": ("due_at",),
    # asyncpg sends date.max (ordering.NO_DISCHARGE) as PostgreSQL's 'infinity'.
    "discharge": ("coalesce(expected_discharge_date, DATE 'infinity')",),
    "created": ("created_at",),
}


async def queue(
    conn: asyncpg.Connection,
    centre_id: str,
    *,
    now: datetime,
    kinds: list[str] | None = None,
    statuses: tuple[str, ...] = LIVE,
    overdue_only: bool = False,
    hospital_ids: list[str] | None = None,
    sort: Sort = DEFAULT_SORT,
    after: Cursor | None = None,
    service: str = "",
    limit: int = 200,
) -> list[Task]:
    """A page of a centre's work in `sort` order (ordering.py), after the cursor if
    one is given (`service` is this service's name, which the cursor's bound needs)."""
    sql, args = queue_query(
        centre_id,
        now=now,
        kinds=kinds,
        statuses=statuses,
        overdue_only=overdue_only,
        hospital_ids=hospital_ids,
        sort=sort,
        after=after,
        service=service,
        limit=limit,
    )
    return [Task.from_row(r) for r in await conn.fetch(sql, *args)]


def queue_query(
    centre_id: str,
    *,
    now: datetime,
    kinds: list[str] | None,
    statuses: tuple[str, ...],
    overdue_only: bool,
    hospital_ids: list[str] | None,
    sort: Sort,
    after: Cursor | None,
    service: str,
    limit: int,
) -> tuple[str, list[object]]:
    """The page's SQL and arguments. The live queue (open and claimed, the default)
    names its statuses literally so PostgreSQL matches the partial indexes; other
    statuses are read through tasks_centre_status."""
    keys = _SORT_SQL[sort]
    where = ["centre_id = $1"]
    args: list[object] = [centre_id]

    def arg(value: object) -> str:
        args.append(value)
        return f"${len(args)}"

    if tuple(statuses) == LIVE:
        where.append("status IN ('open', 'claimed')")
    else:
        where.append(f"status = ANY({arg(list(statuses))}::text[])")
    if kinds:
        where.append(f"kind = ANY({arg(kinds)}::text[])")
    if hospital_ids:
        where.append(f"hospital_id = ANY({arg(hospital_ids)}::text[])")
    if overdue_only:
        where.append(f"due_at < {arg(now)}")
    if after is not None:
        key, after_id = after.bound(service)
        bounds = ", ".join(arg(v) for v in (*key, after_id))
        where.append(f"({', '.join(keys)}, id) > ({bounds})")
    sql = f"""SELECT {_COLUMNS} FROM tasks WHERE {" AND ".join(where)}
              ORDER BY {", ".join(keys)}, id LIMIT {arg(limit)}"""
    return sql, args


async def set_expected_discharge(conn: asyncpg.Connection, case_id: str, on: date) -> None:
    """The hospital moved the discharge date: every task of the case shows the new one."""
    await conn.execute(
        """UPDATE tasks SET expected_discharge_date = $2
           WHERE case_id = $1 AND expected_discharge_date IS DISTINCT FROM $2""",
        case_id,
        on,
    )


async def live_fingerprint(conn: asyncpg.Connection, centre_id: str) -> str:
    """A digest of a centre's live queue (what a coordinator sees of each open or
    claimed task): it changes whenever that queue does. One indexed query and a
    32-character answer, so pages can poll it cheaply."""
    digest: str = await conn.fetchval(
        """SELECT md5(coalesce(string_agg(
                      concat_ws('/', id, status, claimed_by, due_at, attempts, priority),
                      E'\\n' ORDER BY id), ''))
           FROM tasks WHERE centre_id = $1 AND status IN ('open', 'claimed')""",
        centre_id,
    )
    return digest


async def held(conn: asyncpg.Connection, task_id: int, actor: str, *, now: datetime) -> Task:
    """The task, if the actor holds it under a live lease; else the precise TaskError.

    Use cases check this before judging a result, so a coordinator who does not hold
    the task hears that first, not what is wrong with their input."""
    task = await get(conn, task_id)
    if not (
        task.status == "claimed"
        and task.claimed_by == actor
        and task.lease_until is not None
        and task.lease_until >= now
    ):
        await _explain(conn, task_id, actor, now, completing=True)
    return task


async def claim(
    conn: asyncpg.Connection,
    task_id: int,
    actor: str,
    *,
    now: datetime,
    lease: timedelta = DEFAULT_LEASE,
) -> Task:
    """Take a task exclusively until `now + lease`; an expired lease may be taken over."""
    row = await conn.fetchrow(
        f"""UPDATE tasks SET status = 'claimed', claimed_by = $2, lease_until = $3
            WHERE id = $1 AND (status = 'open'
                   OR (status = 'claimed' AND (claimed_by = $2 OR lease_until < $4)))
            RETURNING {_COLUMNS}""",
        task_id,
        actor,
        now + lease,
        now,
    )
    if row is None:
        await _explain(conn, task_id, actor, now)
    await audit(conn, task_id, actor, "claim")
    return Task.from_row(row)


async def complete(
    conn: asyncpg.Connection, task_id: int, actor: str, result: dict[str, Any], *, now: datetime
) -> Task:
    """Finish a task the actor holds under a live lease."""
    return await _update_held(
        conn,
        task_id,
        actor,
        result,
        now=now,
        changes="status = 'done', result = $3, completed_at = $4, completed_by = $2, "
        "lease_until = NULL",
        action="complete",
    )


async def record_attempt(
    conn: asyncpg.Connection, task_id: int, actor: str, result: dict[str, Any], *, now: datetime
) -> Task:
    """A contact attempt that did not reach the person: counted, the task stays with the actor."""
    return await _update_held(
        conn,
        task_id,
        actor,
        result,
        now=now,
        changes="attempts = attempts + 1, result = $3",
        action="contact-attempt",
    )


async def record_progress(
    conn: asyncpg.Connection, task_id: int, actor: str, result: dict[str, Any], *, now: datetime
) -> Task:
    """Part of a task's work recorded (one line of a delivery): the task stays with the actor."""
    return await _update_held(
        conn, task_id, actor, result, now=now, changes="result = $3", action="progress"
    )


async def _update_held(
    conn: asyncpg.Connection,
    task_id: int,
    actor: str,
    result: dict[str, Any],
    *,
    now: datetime,
    changes: str,
    action: str,
) -> Task:
    """One change to a task only its holder may make, under a live lease; audited.
    `changes` is a fixed SET clause of this module ($2 actor, $3 result, $4 now)."""
    row = await conn.fetchrow(
        f"""UPDATE tasks SET {changes}
            WHERE id = $1 AND status = 'claimed' AND claimed_by = $2 AND lease_until >= $4
            RETURNING {_COLUMNS}""",
        task_id,
        actor,
        result,
        now,
    )
    if row is None:
        await _explain(conn, task_id, actor, now, completing=True)
    await audit(conn, task_id, actor, action)
    return Task.from_row(row)


async def finish_live(
    conn: asyncpg.Connection,
    case_id: str,
    kind: str,
    actor: str,
    result: dict[str, Any],
    *,
    now: datetime,
) -> Task | None:
    """Complete the case's live task of `kind` whoever holds it: its work was done by
    someone the task does not know (a provider reported the last delivery). A holder's
    next action on it is answered `task-closed`. None if there is no live one."""
    row = await conn.fetchrow(
        f"""UPDATE tasks SET status = 'done', result = $4, completed_at = $5, completed_by = $3,
                             lease_until = NULL
            WHERE case_id = $1 AND kind = $2 AND status IN ('open', 'claimed')
            RETURNING {_COLUMNS}""",
        case_id,
        kind,
        actor,
        result,
        now,
    )
    if row is None:
        return None
    await audit(conn, row["id"], actor, "complete")
    return Task.from_row(row)


async def reset_attempts(conn: asyncpg.Connection, task_id: int) -> None:
    """Count contact attempts afresh (a coordinator tries an unreachable person again)."""
    await conn.execute("UPDATE tasks SET attempts = 0 WHERE id = $1", task_id)


async def release(conn: asyncpg.Connection, task_id: int, actor: str, *, now: datetime) -> Task:
    row = await conn.fetchrow(
        f"""UPDATE tasks SET status = 'open', claimed_by = NULL, lease_until = NULL
            WHERE id = $1 AND status = 'claimed' AND claimed_by = $2
            RETURNING {_COLUMNS}""",
        task_id,
        actor,
    )
    if row is None:
        await _explain(conn, task_id, actor, now)
    await audit(conn, task_id, actor, "release")
    return Task.from_row(row)


async def reassign(
    conn: asyncpg.Connection,
    task_id: int,
    actor: str,
    to: str,
    *,
    now: datetime,
    lease: timedelta = DEFAULT_LEASE,
) -> Task:
    """Hand a live task to another coordinator (a lead's move): it becomes theirs."""
    row = await conn.fetchrow(
        f"""UPDATE tasks SET status = 'claimed', claimed_by = $2, lease_until = $3
            WHERE id = $1 AND status IN ('open', 'claimed')
            RETURNING {_COLUMNS}""",
        task_id,
        to,
        now + lease,
    )
    if row is None:
        await _explain(conn, task_id, actor, now)
    await audit(conn, task_id, actor, f"reassign:{to}")
    return Task.from_row(row)


async def cancel_live(
    conn: asyncpg.Connection, case_id: str, *, kinds: list[str] | None = None
) -> int:
    """Stop a case's live (and suspended) tasks, e.g. when the hospital cancels."""
    ids = await conn.fetch(
        """UPDATE tasks SET status = 'cancelled', lease_until = NULL
           WHERE case_id = $1 AND status IN ('open', 'claimed', 'suspended')
             AND ($2::text[] IS NULL OR kind = ANY($2::text[]))
           RETURNING id""",
        case_id,
        kinds,
    )
    for row in ids:
        await audit(conn, row["id"], SYSTEM, "cancel")
    return len(ids)


async def suspend(conn: asyncpg.Connection, case_id: str, kinds: list[str]) -> int:
    """Put live tasks on hold (the case is on hold): they leave the queue, keep their history."""
    ids = await conn.fetch(
        """UPDATE tasks SET status = 'suspended', claimed_by = NULL, lease_until = NULL
           WHERE case_id = $1 AND kind = ANY($2::text[]) AND status IN ('open', 'claimed')
           RETURNING id""",
        case_id,
        kinds,
    )
    for row in ids:
        await audit(conn, row["id"], SYSTEM, "suspend")
    return len(ids)


async def resume(
    conn: asyncpg.Connection,
    case_id: str,
    kind: str,
    *,
    due_at: datetime,
    window_start: datetime | None = None,
) -> Task | None:
    """Put a suspended task back in the queue with a new window; None if none is suspended."""
    return await _move(conn, case_id, kind, due_at, window_start, reopen=True)


async def replan(
    conn: asyncpg.Connection,
    case_id: str,
    kind: str,
    *,
    due_at: datetime,
    window_start: datetime | None = None,
) -> Task | None:
    """Move a live task's window (a new discharge date); None if there is none."""
    return await _move(conn, case_id, kind, due_at, window_start, reopen=False)


async def _move(
    conn: asyncpg.Connection,
    case_id: str,
    kind: str,
    due_at: datetime,
    window_start: datetime | None,
    *,
    reopen: bool,
) -> Task | None:
    # A new window is a new deadline: the task may be escalated again when it passes.
    row = await conn.fetchrow(
        f"""UPDATE tasks SET due_at = $3, window_start = $4, escalated_at = NULL,
                             status = CASE WHEN $5 THEN 'open' ELSE status END
            WHERE case_id = $1 AND kind = $2
              AND status = ANY(CASE WHEN $5 THEN ARRAY['suspended']
                                    ELSE ARRAY['open', 'claimed', 'suspended'] END)
            RETURNING {_COLUMNS}""",
        case_id,
        kind,
        due_at,
        window_start,
        reopen,
    )
    if row is None:
        return None
    await audit(conn, row["id"], SYSTEM, "resume" if reopen else "replan")
    return Task.from_row(row)


async def _explain(
    conn: asyncpg.Connection, task_id: int, actor: str, now: datetime, *, completing: bool = False
) -> None:
    """Raise the precise reason an operation did not match the task."""
    task = await get(conn, task_id)
    if task.status in ("done", "cancelled", "suspended"):
        raise TaskClosed(f"task {task_id} is {task.status}")
    if task.status == "claimed" and task.claimed_by != actor:
        if task.lease_until is not None and task.lease_until < now:
            raise LeaseExpired(f"task {task_id}: the lease of its holder expired; claim it first")
        raise ClaimedByOther(f"task {task_id} is claimed by someone else")
    if task.status == "claimed" and task.lease_until is not None and task.lease_until < now:
        raise LeaseExpired(f"task {task_id}: your lease expired; claim it again")
    if completing or task.status == "open":
        raise NotClaimed(f"task {task_id} is not claimed by you")
    raise TaskError(f"task {task_id} cannot be changed now")


async def audit(
    conn: asyncpg.Connection,
    task_id: int,
    actor: str,
    action: str,
    *,
    reason_code: str | None = None,
    note: str | None = None,
) -> None:
    """Who did what to a task, when; an exit also records its coded reason and note."""
    await conn.execute(
        "INSERT INTO task_audit (task_id, actor, action, reason_code, note)"
        " VALUES ($1, $2, $3, $4, $5)",
        task_id,
        actor,
        action,
        reason_code,
        note,
    )
