"""services/lib/tasks: the coordinators' task queue against the real PostgreSQL (no mocks).

One fresh database per module (escalation tests get their own, since the watcher
scans the whole table). Time is moved with the operations' `now` parameter.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

import services.lib.tasks
from contracts.escalations import TaskOverdue
from contracts.topics import ESCALATIONS
from services.lib.runtime.db import RUNTIME_MIGRATIONS, create_pool, load_migrations, migrate
from services.lib.runtime.outbox import decode_headers
from services.lib.tasks import operations as ops
from services.lib.tasks.deadlines import escalate_overdue
from services.tools.localinfra import Endpoints, ensure_databases

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

T0 = datetime.now(UTC).replace(microsecond=0)
LEASE = ops.DEFAULT_LEASE


async def fresh_pool(endpoints: Endpoints, *, max_size: int = 5) -> asyncpg.Pool:
    name = f"tk_{uuid.uuid4().hex[:10]}"
    url = (await ensure_databases(endpoints.postgres_url, [name]))[name]
    conn = await asyncpg.connect(url)
    try:
        await migrate(
            conn,
            load_migrations(
                [("runtime", RUNTIME_MIGRATIONS), ("tasks", services.lib.tasks.MIGRATIONS)]
            ),
        )
    finally:
        await conn.close()
    return await create_pool(url, min_size=1, max_size=max_size)


@pytest.fixture(scope="module")
async def pool(endpoints: Endpoints) -> AsyncIterator[asyncpg.Pool]:
    pool = await fresh_pool(endpoints, max_size=24)
    try:
        yield pool
    finally:
        await asyncio.wait_for(pool.close(), 10)


@pytest.fixture
async def conn(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    async with pool.acquire() as connection:
        yield connection


def ids(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def new_task(
    conn: asyncpg.Connection,
    *,
    case_id: str | None = None,
    kind: str = "review",
    centre_id: str | None = None,
    priority: str = "routine",
    due_at: datetime | None = None,
) -> ops.Task:
    task = await ops.create(
        conn,
        case_id=case_id or ids("case"),
        kind=kind,
        centre_id=centre_id or ids("centre"),
        priority=priority,
        due_at=due_at or T0 + timedelta(hours=72),
    )
    assert task is not None
    return task


async def audit_rows(conn: asyncpg.Connection, task_id: int) -> list[tuple[str, str]]:
    rows = await conn.fetch(
        "SELECT actor, action FROM task_audit WHERE task_id = $1 ORDER BY id", task_id
    )
    return [(r["actor"], r["action"]) for r in rows]


# --- create --------------------------------------------------------------------------


async def test_create_is_idempotent_while_a_task_of_that_kind_is_live(
    conn: asyncpg.Connection,
) -> None:
    first = await new_task(conn)
    again = await ops.create(
        conn,
        case_id=first.case_id,
        kind="review",
        centre_id=first.centre_id,
        priority="urgent",
        due_at=T0,
    )
    await ops.claim(conn, first.id, "coord-a", now=T0)
    while_claimed = await ops.create(
        conn,
        case_id=first.case_id,
        kind="review",
        centre_id=first.centre_id,
        priority="routine",
        due_at=T0,
    )
    assert again is None
    assert while_claimed is None
    assert [t.id for t in await ops.for_case(conn, first.case_id)] == [first.id]


async def test_create_allows_a_new_generation_after_the_task_is_done(
    conn: asyncpg.Connection,
) -> None:
    first = await new_task(conn)
    await ops.claim(conn, first.id, "coord-a", now=T0)
    await ops.complete(conn, first.id, "coord-a", {"decision": "eligible"}, now=T0)
    second = await ops.create(
        conn,
        case_id=first.case_id,
        kind="review",
        centre_id=first.centre_id,
        priority="routine",
        due_at=T0 + timedelta(hours=1),
    )
    assert second is not None
    assert second.id != first.id
    assert second.status == "open"
    generations = await conn.fetch(
        "SELECT id, generation FROM tasks WHERE case_id = $1 ORDER BY id", first.case_id
    )
    assert [(r["id"], r["generation"]) for r in generations] == [(first.id, 1), (second.id, 2)]


async def test_create_of_another_kind_for_the_same_case_is_a_separate_task(
    conn: asyncpg.Connection,
) -> None:
    review = await new_task(conn, kind="review")
    visit = await ops.create(
        conn,
        case_id=review.case_id,
        kind="pre-discharge-visit",
        centre_id=review.centre_id,
        priority="routine",
        due_at=T0,
    )
    assert visit is not None
    assert visit.id != review.id


async def test_concurrent_creates_for_one_case_and_kind_give_one_task_and_one_none(
    pool: asyncpg.Pool,
) -> None:
    case_id, centre = ids("case"), ids("centre")
    both_in_transaction = asyncio.Barrier(2)

    async def create_once() -> ops.Task | None:
        async with pool.acquire() as own, own.transaction():
            await both_in_transaction.wait()
            created = await ops.create(
                own, case_id=case_id, kind="review", centre_id=centre, priority="routine", due_at=T0
            )
            await asyncio.sleep(0.2)  # hold the transaction open: the other create overlaps
            return created

    results = await asyncio.wait_for(asyncio.gather(create_once(), create_once()), 15)
    assert sorted(r is None for r in results) == [False, True]


# --- queue ---------------------------------------------------------------------------


async def test_queue_lists_only_the_centres_open_and_claimed_tasks_urgent_first_then_by_due_at(
    conn: asyncpg.Connection,
) -> None:
    centre = ids("centre")
    routine_late = await new_task(conn, centre_id=centre, due_at=T0 + timedelta(hours=3))
    urgent_late = await new_task(
        conn, centre_id=centre, priority="urgent", due_at=T0 + timedelta(hours=5)
    )
    routine_early = await new_task(conn, centre_id=centre, due_at=T0 + timedelta(hours=1))
    urgent_early = await new_task(
        conn, centre_id=centre, priority="urgent", due_at=T0 + timedelta(hours=2)
    )
    await ops.claim(conn, routine_late.id, "coord-a", now=T0)
    done = await new_task(conn, centre_id=centre, due_at=T0)
    await ops.claim(conn, done.id, "coord-a", now=T0)
    await ops.complete(conn, done.id, "coord-a", {}, now=T0)
    suspended = await new_task(conn, centre_id=centre, kind="pre-discharge-visit", due_at=T0)
    await ops.suspend(conn, suspended.case_id, ["pre-discharge-visit"])
    cancelled = await new_task(conn, centre_id=centre, due_at=T0)
    await ops.cancel_live(conn, cancelled.case_id)
    await new_task(conn, centre_id=ids("other-centre"), priority="urgent", due_at=T0)

    queue = await ops.queue(conn, centre, now=T0)

    assert [t.id for t in queue] == [
        urgent_early.id,
        urgent_late.id,
        routine_early.id,
        routine_late.id,
    ]
    assert {t.status for t in queue} == {"open", "claimed"}


async def test_queue_kind_filter_lists_only_tasks_of_those_kinds(
    conn: asyncpg.Connection,
) -> None:
    centre = ids("centre")
    review = await new_task(conn, centre_id=centre, kind="review")
    visit = await new_task(conn, centre_id=centre, kind="pre-discharge-visit")
    await new_task(conn, centre_id=centre, kind="care-plan")

    only_reviews = await ops.queue(conn, centre, now=T0, kinds=["review"])
    visits_and_reviews = await ops.queue(
        conn, centre, now=T0, kinds=["review", "pre-discharge-visit"]
    )

    assert [t.id for t in only_reviews] == [review.id]
    assert {t.id for t in visits_and_reviews} == {review.id, visit.id}


async def test_queue_overdue_filter_lists_only_tasks_due_before_now(
    conn: asyncpg.Connection,
) -> None:
    centre = ids("centre")
    overdue = await new_task(conn, centre_id=centre, due_at=T0 - timedelta(minutes=1))
    due_now = await new_task(conn, centre_id=centre, due_at=T0)
    await new_task(conn, centre_id=centre, due_at=T0 + timedelta(hours=1))

    listed = await ops.queue(conn, centre, now=T0, overdue_only=True)

    assert [t.id for t in listed] == [overdue.id]
    assert listed[0].overdue(T0)
    assert due_now.overdue(T0) is False


# --- claim ---------------------------------------------------------------------------


async def test_claim_is_exclusive_among_20_concurrent_actors(
    pool: asyncpg.Pool, conn: asyncpg.Connection
) -> None:
    task = await new_task(conn)
    actors = [f"coord-{n:02d}" for n in range(20)]
    all_in_transaction = asyncio.Barrier(len(actors))

    async def claim_as(actor: str) -> ops.Task:
        async with pool.acquire() as own, own.transaction():
            await all_in_transaction.wait()
            claimed = await ops.claim(own, task.id, actor, now=T0)
            await asyncio.sleep(0.2)  # hold the row: the others must wait for this commit
            return claimed

    results = await asyncio.wait_for(
        asyncio.gather(*(claim_as(a) for a in actors), return_exceptions=True), 30
    )

    winners = [r for r in results if isinstance(r, ops.Task)]
    losers = [r for r in results if not isinstance(r, ops.Task)]
    assert len(winners) == 1
    assert len(losers) == 19
    assert all(isinstance(e, ops.ClaimedByOther) for e in losers), losers
    stored = await ops.get(conn, task.id)
    assert stored.status == "claimed"
    assert stored.claimed_by == winners[0].claimed_by
    assert await audit_rows(conn, task.id) == [
        ("system", "create"),
        (winners[0].claimed_by, "claim"),
    ]


async def test_claim_of_a_task_held_under_a_live_lease_by_another_raises_claimed_by_other(
    conn: asyncpg.Connection,
) -> None:
    task = await new_task(conn)
    await ops.claim(conn, task.id, "coord-a", now=T0)
    with pytest.raises(ops.ClaimedByOther):
        await ops.claim(conn, task.id, "coord-b", now=T0 + LEASE - timedelta(seconds=1))
    assert (await ops.get(conn, task.id)).claimed_by == "coord-a"


async def test_claim_on_an_expired_lease_by_another_actor_succeeds(
    conn: asyncpg.Connection,
) -> None:
    task = await new_task(conn)
    await ops.claim(conn, task.id, "coord-a", now=T0)
    later = T0 + LEASE + timedelta(seconds=1)
    taken = await ops.claim(conn, task.id, "coord-b", now=later)
    assert taken.claimed_by == "coord-b"
    assert taken.lease_until == later + LEASE


# --- complete ------------------------------------------------------------------------


async def test_complete_by_the_holder_under_a_live_lease_marks_it_done(
    conn: asyncpg.Connection,
) -> None:
    task = await new_task(conn)
    await ops.claim(conn, task.id, "coord-a", now=T0)
    at = T0 + timedelta(minutes=5)
    done = await ops.complete(conn, task.id, "coord-a", {"decision": "eligible"}, now=at)
    assert (done.status, done.completed_by, done.completed_at) == ("done", "coord-a", at)
    assert done.result == {"decision": "eligible"}
    assert done.lease_until is None


async def test_complete_after_ones_lease_expired_raises_lease_expired(
    conn: asyncpg.Connection,
) -> None:
    task = await new_task(conn)
    await ops.claim(conn, task.id, "coord-a", now=T0)
    with pytest.raises(ops.LeaseExpired):
        await ops.complete(conn, task.id, "coord-a", {}, now=T0 + LEASE + timedelta(seconds=1))
    assert (await ops.get(conn, task.id)).status == "claimed"


async def test_complete_by_a_non_holder_of_a_claimed_task_raises_claimed_by_other(
    conn: asyncpg.Connection,
) -> None:
    task = await new_task(conn)
    await ops.claim(conn, task.id, "coord-a", now=T0)
    with pytest.raises(ops.ClaimedByOther):
        await ops.complete(conn, task.id, "coord-b", {}, now=T0 + timedelta(minutes=1))
    assert (await ops.get(conn, task.id)).status == "claimed"


async def test_complete_of_an_unclaimed_task_raises_not_claimed(
    conn: asyncpg.Connection,
) -> None:
    task = await new_task(conn)
    with pytest.raises(ops.NotClaimed):
        await ops.complete(conn, task.id, "coord-b", {}, now=T0)
    assert (await ops.get(conn, task.id)).status == "open"


async def test_completing_a_done_task_raises_task_closed(conn: asyncpg.Connection) -> None:
    task = await new_task(conn)
    await ops.claim(conn, task.id, "coord-a", now=T0)
    await ops.complete(conn, task.id, "coord-a", {"n": 1}, now=T0)
    with pytest.raises(ops.TaskClosed):
        await ops.complete(conn, task.id, "coord-a", {"n": 2}, now=T0)
    assert (await ops.get(conn, task.id)).result == {"n": 1}


# --- release, reassign, attempts -----------------------------------------------------


async def test_release_returns_the_task_to_open(conn: asyncpg.Connection) -> None:
    task = await new_task(conn)
    await ops.claim(conn, task.id, "coord-a", now=T0)
    released = await ops.release(conn, task.id, "coord-a", now=T0)
    assert (released.status, released.claimed_by, released.lease_until) == ("open", None, None)
    # Anyone may take it now, while the first lease would still have run.
    assert (await ops.claim(conn, task.id, "coord-b", now=T0)).claimed_by == "coord-b"


async def test_release_by_a_non_holder_raises_claimed_by_other(conn: asyncpg.Connection) -> None:
    task = await new_task(conn)
    await ops.claim(conn, task.id, "coord-a", now=T0)
    with pytest.raises(ops.ClaimedByOther):
        await ops.release(conn, task.id, "coord-b", now=T0)
    assert (await ops.get(conn, task.id)).claimed_by == "coord-a"


async def test_reassign_gives_the_task_to_another_actor_who_can_complete_it(
    conn: asyncpg.Connection,
) -> None:
    task = await new_task(conn)
    await ops.claim(conn, task.id, "coord-a", now=T0)
    moved = await ops.reassign(conn, task.id, "lead-1", "coord-b", now=T0)
    assert (moved.status, moved.claimed_by) == ("claimed", "coord-b")
    done = await ops.complete(conn, task.id, "coord-b", {}, now=T0 + timedelta(minutes=1))
    assert (done.status, done.completed_by) == ("done", "coord-b")


async def test_after_reassign_the_previous_holder_cannot_complete(
    conn: asyncpg.Connection,
) -> None:
    task = await new_task(conn)
    await ops.claim(conn, task.id, "coord-a", now=T0)
    await ops.reassign(conn, task.id, "lead-1", "coord-b", now=T0)
    with pytest.raises(ops.ClaimedByOther):
        await ops.complete(conn, task.id, "coord-a", {}, now=T0 + timedelta(minutes=1))
    assert (await ops.get(conn, task.id)).status == "claimed"


async def test_record_attempt_increments_attempts_and_keeps_the_task_with_the_actor(
    conn: asyncpg.Connection,
) -> None:
    task = await new_task(conn, kind="pre-discharge-visit")
    await ops.claim(conn, task.id, "coord-a", now=T0)
    await ops.record_attempt(conn, task.id, "coord-a", {"attempt": 1}, now=T0)
    second = await ops.record_attempt(conn, task.id, "coord-a", {"attempt": 2}, now=T0)
    assert second.attempts == 2
    assert (second.status, second.claimed_by, second.result) == (
        "claimed",
        "coord-a",
        {"attempt": 2},
    )


# --- suspend, resume, replan, cancel_live --------------------------------------------


async def test_suspend_takes_live_tasks_of_the_kinds_off_the_queue(
    conn: asyncpg.Connection,
) -> None:
    case_id, centre = ids("case"), ids("centre")
    visit = await new_task(conn, case_id=case_id, centre_id=centre, kind="pre-discharge-visit")
    await ops.claim(conn, visit.id, "coord-a", now=T0)
    review = await new_task(conn, case_id=case_id, centre_id=centre, kind="review")

    count = await ops.suspend(conn, case_id, ["pre-discharge-visit"])

    stored = await ops.get(conn, visit.id)
    assert count == 1
    assert (stored.status, stored.claimed_by, stored.lease_until) == ("suspended", None, None)
    assert [t.id for t in await ops.queue(conn, centre, now=T0)] == [review.id]
    assert (await ops.get(conn, review.id)).status == "open"


async def test_suspended_task_still_counts_as_live_for_create(conn: asyncpg.Connection) -> None:
    visit = await new_task(conn, kind="pre-discharge-visit")
    await ops.suspend(conn, visit.case_id, ["pre-discharge-visit"])
    again = await ops.create(
        conn,
        case_id=visit.case_id,
        kind="pre-discharge-visit",
        centre_id=visit.centre_id,
        priority="routine",
        due_at=T0,
    )
    assert again is None


async def test_resume_reopens_the_suspended_task_with_its_new_window(
    conn: asyncpg.Connection,
) -> None:
    visit = await new_task(conn, kind="pre-discharge-visit")
    await ops.suspend(conn, visit.case_id, ["pre-discharge-visit"])
    due, start = T0 + timedelta(days=9), T0 + timedelta(days=2)

    resumed = await ops.resume(
        conn, visit.case_id, "pre-discharge-visit", due_at=due, window_start=start
    )

    assert resumed is not None
    assert (resumed.id, resumed.status, resumed.due_at, resumed.window_start) == (
        visit.id,
        "open",
        due,
        start,
    )


async def test_resume_without_a_suspended_task_returns_none(conn: asyncpg.Connection) -> None:
    visit = await new_task(conn, kind="pre-discharge-visit")
    assert await ops.resume(conn, visit.case_id, "pre-discharge-visit", due_at=T0) is None
    assert (await ops.get(conn, visit.id)).status == "open"


async def test_replan_moves_a_live_tasks_window_and_clears_its_escalation(
    conn: asyncpg.Connection,
) -> None:
    visit = await new_task(conn, kind="pre-discharge-visit")
    await conn.execute("UPDATE tasks SET escalated_at = $2 WHERE id = $1", visit.id, T0)
    due, start = T0 + timedelta(days=4), T0 + timedelta(days=1)

    moved = await ops.replan(
        conn, visit.case_id, "pre-discharge-visit", due_at=due, window_start=start
    )

    assert moved is not None
    assert (moved.id, moved.due_at, moved.window_start, moved.status) == (
        visit.id,
        due,
        start,
        "open",
    )
    escalated_at = await conn.fetchval("SELECT escalated_at FROM tasks WHERE id = $1", visit.id)
    assert escalated_at is None


async def test_replan_without_a_live_task_returns_none(conn: asyncpg.Connection) -> None:
    visit = await new_task(conn, kind="pre-discharge-visit")
    await ops.claim(conn, visit.id, "coord-a", now=T0)
    await ops.complete(conn, visit.id, "coord-a", {}, now=T0)
    later = T0 + timedelta(days=3)
    assert await ops.replan(conn, visit.case_id, "pre-discharge-visit", due_at=later) is None
    assert (await ops.get(conn, visit.id)).due_at == visit.due_at


async def test_cancel_live_cancels_open_claimed_and_suspended_tasks_but_not_done_ones(
    conn: asyncpg.Connection,
) -> None:
    case_id = ids("case")
    done = await new_task(conn, case_id=case_id, kind="review")
    await ops.claim(conn, done.id, "coord-a", now=T0)
    await ops.complete(conn, done.id, "coord-a", {}, now=T0)
    claimed = await new_task(conn, case_id=case_id, kind="care-plan")
    await ops.claim(conn, claimed.id, "coord-a", now=T0)
    suspended = await new_task(conn, case_id=case_id, kind="pre-discharge-visit")
    await ops.suspend(conn, case_id, ["pre-discharge-visit"])
    open_task = await new_task(conn, case_id=case_id, kind="post-discharge-visit")

    count = await ops.cancel_live(conn, case_id)

    statuses = {t.id: t.status for t in await ops.for_case(conn, case_id)}
    assert count == 3
    assert statuses == {
        done.id: "done",
        claimed.id: "cancelled",
        suspended.id: "cancelled",
        open_task.id: "cancelled",
    }


async def test_cancel_live_with_kinds_cancels_only_those_kinds(conn: asyncpg.Connection) -> None:
    case_id = ids("case")
    review = await new_task(conn, case_id=case_id, kind="review")
    visit = await new_task(conn, case_id=case_id, kind="pre-discharge-visit")

    count = await ops.cancel_live(conn, case_id, kinds=["pre-discharge-visit"])

    assert count == 1
    assert (await ops.get(conn, visit.id)).status == "cancelled"
    assert (await ops.get(conn, review.id)).status == "open"


# --- audit ---------------------------------------------------------------------------


async def test_every_coordinator_operation_writes_a_task_audit_row_with_actor_and_action(
    conn: asyncpg.Connection,
) -> None:
    task = await new_task(conn, kind="pre-discharge-visit")
    await ops.claim(conn, task.id, "coord-a", now=T0)
    await ops.record_attempt(conn, task.id, "coord-a", {"reached": False}, now=T0)
    await ops.release(conn, task.id, "coord-a", now=T0)
    await ops.claim(conn, task.id, "coord-b", now=T0)
    await ops.reassign(conn, task.id, "lead-1", "coord-c", now=T0)
    await ops.complete(conn, task.id, "coord-c", {"reached": True}, now=T0)

    assert await audit_rows(conn, task.id) == [
        ("system", "create"),
        ("coord-a", "claim"),
        ("coord-a", "contact-attempt"),
        ("coord-a", "release"),
        ("coord-b", "claim"),
        ("lead-1", "reassign:coord-c"),
        ("coord-c", "complete"),
    ]


async def test_lifecycle_operations_write_a_task_audit_row_each(
    conn: asyncpg.Connection,
) -> None:
    visit = await new_task(conn, kind="pre-discharge-visit")
    await ops.suspend(conn, visit.case_id, ["pre-discharge-visit"])
    await ops.resume(conn, visit.case_id, "pre-discharge-visit", due_at=T0 + timedelta(days=1))
    await ops.replan(conn, visit.case_id, "pre-discharge-visit", due_at=T0 + timedelta(days=2))
    await ops.cancel_live(conn, visit.case_id)
    assert [action for _, action in await audit_rows(conn, visit.id)] == [
        "create",
        "suspend",
        "resume",
        "replan",
        "cancel",
    ]


# --- escalate_overdue ----------------------------------------------------------------


async def outbox_escalations(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT topic, key, value, headers FROM outbox WHERE topic = $1 ORDER BY id", ESCALATIONS
    )
    return [
        {
            "key": bytes(r["key"]).decode(),
            "headers": dict(decode_headers(r["headers"])),
            "data": TaskOverdue.model_validate(json.loads(bytes(r["value"]))),
        }
        for r in rows
    ]


async def test_escalate_overdue_emits_one_outbox_row_per_overdue_task_then_none(
    endpoints: Endpoints,
) -> None:
    pool = await fresh_pool(endpoints)
    try:
        async with pool.acquire() as conn:
            centre = ids("centre")
            overdue = [
                await new_task(conn, centre_id=centre, due_at=T0 - timedelta(minutes=m))
                for m in (1, 30, 90)
            ]
            await new_task(conn, centre_id=centre, due_at=T0 + timedelta(minutes=1))
            finished = await new_task(conn, centre_id=centre, due_at=T0 - timedelta(hours=5))
            await ops.claim(conn, finished.id, "coord-a", now=T0)
            await ops.complete(conn, finished.id, "coord-a", {}, now=T0)
            await ops.claim(conn, overdue[0].id, "coord-a", now=T0)  # claimed still counts

            first = await escalate_overdue(conn, service="referral", now=T0)
            second = await escalate_overdue(conn, service="referral", now=T0)
            records = await outbox_escalations(conn)
    finally:
        await asyncio.wait_for(pool.close(), 10)

    assert (first, second) == (3, 0)
    assert sorted(r["data"].task_id for r in records) == sorted(t.id for t in overdue)
    by_task = {t.id: t for t in overdue}
    for record in records:
        task = by_task[record["data"].task_id]
        assert record["key"] == task.case_id
        assert record["headers"]["ce_type"] == b"carelink.task.overdue.v1"
        assert record["data"].case_id == task.case_id
        assert record["data"].centre_id == centre
        assert record["data"].service == "referral"


async def test_concurrent_escalate_overdue_calls_never_escalate_the_same_task_twice(
    endpoints: Endpoints,
) -> None:
    pool = await fresh_pool(endpoints, max_size=6)
    try:
        async with pool.acquire() as conn:
            centre = ids("centre")
            tasks = [
                await new_task(conn, centre_id=centre, due_at=T0 - timedelta(seconds=n + 1))
                for n in range(60)
            ]
        start = asyncio.Barrier(4)

        async def watcher() -> int:
            total = 0
            async with pool.acquire() as own:
                await start.wait()
                while True:
                    found = await escalate_overdue(own, service="scheduling", now=T0, limit=7)
                    if not found:
                        return total
                    total += found

        counts = await asyncio.wait_for(asyncio.gather(*(watcher() for _ in range(4))), 30)
        async with pool.acquire() as conn:
            records = await outbox_escalations(conn)
            unescalated = await conn.fetchval(
                "SELECT count(*) FROM tasks WHERE escalated_at IS NULL"
            )
    finally:
        await asyncio.wait_for(pool.close(), 10)

    escalated_ids = [r["data"].task_id for r in records]
    assert sum(counts) == len(tasks)
    assert len(escalated_ids) == len(set(escalated_ids)) == len(tasks)
    assert set(escalated_ids) == {t.id for t in tasks}
    assert unescalated == 0
