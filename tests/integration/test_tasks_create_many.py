"""`tasks.create_many` (issue 12) on the real PostgreSQL: the set gives exactly what as
many `tasks.create` calls in the same order give (the same tasks, generations, audit
rows, and None for a task of a kind already live, including one repeated in the set),
and two transactions creating overlapping sets in opposite orders neither deadlock nor
make two live tasks of a kind for a case."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from services.lib.tasks import operations as ops
from services.tools.localinfra import Endpoints
from tests.integration.test_tasks import fresh_pool

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

T0 = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
async def pool(endpoints: Endpoints) -> AsyncIterator[asyncpg.Pool]:
    pool = await fresh_pool(endpoints, max_size=4)
    try:
        yield pool
    finally:
        await asyncio.wait_for(pool.close(), 10)


def _wanted(prefix: str) -> list[ops.NewTask]:
    """A set with every case create_many must tell apart (ids under `prefix`)."""

    def task(case: str, kind: str, hours: int, **extra: Any) -> ops.NewTask:
        return ops.NewTask(
            case_id=f"{prefix}-{case}",
            kind=kind,
            centre_id="songpa-care-sos",
            priority="urgent" if case == "b" else "routine",
            due_at=T0 + timedelta(hours=hours),
            hospital_id="seoul-general",
            expected_discharge_date=date(2026, 3, 10),
            **extra,
        )

    return [
        task("a", "review", 72),  # new
        task("live", "review", 72),  # a live review already: None
        task("b", "review", 24),  # new, urgent
        task("a", "review", 48),  # repeated in the set: the first one is live now, None
        task("a", "care-plan", 96, window_start=T0),  # another kind of the same case
        task("done", "review", 72),  # only a done one before: a second generation
        task("held", "review", 72),  # suspended counts as live: None
    ]


async def _prepare(conn: asyncpg.Connection, prefix: str) -> None:
    """What the store holds before the set: a live, a done and a suspended review."""
    for case in ("live", "done", "held"):
        created = await ops.create(
            conn,
            case_id=f"{prefix}-{case}",
            kind="review",
            centre_id="songpa-care-sos",
            priority="routine",
            due_at=T0,
        )
        assert created is not None
    await conn.execute("UPDATE tasks SET status = 'done' WHERE case_id = $1", f"{prefix}-done")
    await ops.suspend(conn, f"{prefix}-held", ["review"])


def _shape(task: ops.Task | None, prefix: str) -> tuple[Any, ...] | None:
    if task is None:
        return None
    return (
        task.case_id.removeprefix(prefix),
        task.kind,
        task.centre_id,
        task.priority,
        task.due_at,
        task.window_start,
        task.status,
        task.hospital_id,
        task.expected_discharge_date,
    )


async def _stored(conn: asyncpg.Connection, prefix: str) -> tuple[list[Any], list[Any]]:
    """The prefix's tasks in id order and their audit rows in audit order, ids left out."""
    tasks = await conn.fetch(
        """SELECT case_id, kind, priority, due_at, window_start, status, generation,
                  hospital_id, expected_discharge_date
           FROM tasks WHERE case_id LIKE $1 || '-%' ORDER BY id""",
        prefix,
    )
    audit = await conn.fetch(
        """SELECT t.case_id, t.kind, t.generation, a.actor, a.action, a.reason_code, a.note
           FROM task_audit a JOIN tasks t ON t.id = a.task_id
           WHERE t.case_id LIKE $1 || '-%' ORDER BY a.id""",
        prefix,
    )

    def strip(row: asyncpg.Record) -> tuple[Any, ...]:
        return (row["case_id"].removeprefix(prefix), *tuple(row)[1:])

    return [strip(r) for r in tasks], [strip(r) for r in audit]


async def test_create_many_gives_what_as_many_creates_in_order_give(pool: asyncpg.Pool) -> None:
    one, many = f"one-{uuid.uuid4().hex[:8]}", f"many-{uuid.uuid4().hex[:8]}"
    async with pool.acquire() as conn:
        async with conn.transaction():
            await _prepare(conn, one)
            singles = [
                await ops.create(
                    conn,
                    case_id=t.case_id,
                    kind=t.kind,
                    centre_id=t.centre_id,
                    priority=t.priority,
                    due_at=t.due_at,
                    window_start=t.window_start,
                    hospital_id=t.hospital_id,
                    expected_discharge_date=t.expected_discharge_date,
                )
                for t in _wanted(one)
            ]
        async with conn.transaction():
            await _prepare(conn, many)
            batch = await ops.create_many(conn, _wanted(many))
        by_one, by_many = await _stored(conn, one), await _stored(conn, many)
        assert await ops.create_many(conn, []) == []

    assert [_shape(t, many) for t in batch] == [_shape(t, one) for t in singles]
    # New for a, b, a's care plan and the done case; None for the rest.
    assert [t is not None for t in batch] == [True, False, True, False, True, True, False]
    assert by_many == by_one
    tasks, audit = by_many
    assert [(r[0], r[1], r[6]) for r in tasks if r[0] == "-done"] == [
        ("-done", "review", 1),
        ("-done", "review", 2),
    ]
    # Each created task has its one `create` audit row by the system, in creation order.
    created = [(t.case_id.removeprefix(many), t.kind) for t in batch if t is not None]
    assert [(r[0], r[1]) for r in audit if r[4] == "create"][-len(created) :] == created
    assert {(r[3], r[4]) for r in audit if (r[0], r[1]) in created} == {(ops.SYSTEM, "create")}


async def test_overlapping_sets_in_opposite_orders_at_once_give_one_live_task_each(
    pool: asyncpg.Pool,
) -> None:
    prefix = f"race-{uuid.uuid4().hex[:8]}"
    wanted = [
        ops.NewTask(
            case_id=f"{prefix}-{i:04d}",
            kind="review",
            centre_id="songpa-care-sos",
            priority="routine",
            due_at=T0,
        )
        for i in range(2000)
    ]
    both_in = asyncio.Barrier(2)

    async def create(tasks: list[ops.NewTask]) -> list[ops.Task | None]:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT 1")
            await both_in.wait()
            return await ops.create_many(conn, tasks)

    # One instance takes cases 0-1599, the other 400-1999 backwards: 400-1599 are wanted
    # by both. Sets this large make the two lock statements overlap in time (in input
    # order instead of sorted, they deadlock about every other run).
    first, second = await asyncio.gather(
        create(wanted[:1600]), create(list(reversed(wanted[400:])))
    )

    made = [t.case_id for t in (*first, *second) if t is not None]
    assert sorted(made) == sorted(t.case_id for t in wanted)  # each case once, no deadlock
    async with pool.acquire() as conn:
        live = await conn.fetch(
            """SELECT case_id, count(*) AS n FROM tasks
               WHERE case_id LIKE $1 || '-%' AND status = 'open' GROUP BY case_id""",
            prefix,
        )
    assert len(live) == len(wanted)
    assert {r["n"] for r in live} == {1}
