"""A queue people can work from (issue 10), against the real PostgreSQL: the task
library's filters (hospital), sorts and keyset pages, the case facts tasks carry,
and an index matching every sort (no sort step, no table scan).

One fresh database for the module; each test uses a centre of its own.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest

import services.lib.tasks
from services.lib.runtime.db import RUNTIME_MIGRATIONS, create_pool, load_migrations, migrate
from services.lib.tasks import operations as ops
from services.lib.tasks.ordering import SORTS, Cursor, Sort, merge_key
from services.tools.localinfra import Endpoints, ensure_databases

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

T0 = datetime.now(UTC).replace(microsecond=0)
SERVICE = "referral"


@pytest.fixture(scope="module")
async def pool(endpoints: Endpoints) -> AsyncIterator[asyncpg.Pool]:
    name = f"qp_{uuid.uuid4().hex[:10]}"
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
    pool = await create_pool(url, min_size=1, max_size=4)
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


async def seed(conn: asyncpg.Connection, centre: str, n: int) -> list[ops.Task]:
    """n live tasks with many equal keys, so pages must rely on the tie-breakers."""
    made = []
    for i in range(n):
        task = await ops.create(
            conn,
            case_id=ids("case"),
            kind=("review", "care-plan", "delivery")[i % 3],
            centre_id=centre,
            priority="urgent" if i % 4 == 0 else "routine",
            due_at=T0 + timedelta(hours=i % 5),
            hospital_id=("police-hospital", "snuh")[i % 2],
            expected_discharge_date=None if i % 6 == 0 else date(2026, 12, 10 + i % 3),
        )
        assert task is not None
        made.append(task)
    return made


@pytest.mark.parametrize("sort", SORTS)
async def test_pages_after_the_cursor_list_every_live_task_once_in_the_sorts_order(
    conn: asyncpg.Connection, sort: Sort
) -> None:
    centre = ids("centre")
    made = await seed(conn, centre, 23)
    seen: list[ops.Task] = []
    cursor: Cursor | None = None
    for _ in range(10):
        page = await ops.queue(
            conn, centre, now=T0, sort=sort, after=cursor, service=SERVICE, limit=5
        )
        if not page:
            break
        seen += page
        cursor = Cursor.decode(Cursor.after(sort, SERVICE, page[-1]).encode(), sort)

    assert [t.id for t in seen] == [
        t.id for t in sorted(made, key=lambda t: merge_key(sort, SERVICE, t))
    ]


async def test_a_task_claimed_between_pages_is_neither_repeated_nor_skipped(
    conn: asyncpg.Connection,
) -> None:
    centre = ids("centre")
    made = await seed(conn, centre, 8)
    first = await ops.queue(conn, centre, now=T0, sort="deadline", service=SERVICE, limit=4)
    # Someone claims a task of the first page and one of the second in between.
    await ops.claim(conn, first[0].id, "coord-a", now=T0)
    rest = await ops.queue(
        conn,
        centre,
        now=T0,
        sort="deadline",
        service=SERVICE,
        limit=4,
        after=Cursor.after("deadline", SERVICE, first[-1]),
    )

    assert len({t.id for t in first + rest}) == 8
    assert {t.id for t in first + rest} == {t.id for t in made}


async def test_hospital_filter_lists_only_that_hospitals_tasks_with_their_case_facts(
    conn: asyncpg.Connection,
) -> None:
    centre = ids("centre")
    made = await seed(conn, centre, 6)

    listed = await ops.queue(conn, centre, now=T0, hospital_ids=["snuh"], service=SERVICE)

    assert {t.id for t in listed} == {t.id for t in made if t.hospital_id == "snuh"}
    assert len(listed) == 3
    assert all(t.hospital_id == "snuh" for t in listed)
    assert {t.id: t.expected_discharge_date for t in listed} == {
        t.id: t.expected_discharge_date for t in made if t.hospital_id == "snuh"
    }


async def test_a_new_discharge_date_reaches_every_task_of_the_case(
    conn: asyncpg.Connection,
) -> None:
    centre, case = ids("centre"), ids("case")
    for kind in ("review", "care-plan"):
        await ops.create(
            conn,
            case_id=case,
            kind=kind,
            centre_id=centre,
            priority="routine",
            due_at=T0,
            hospital_id="snuh",
            expected_discharge_date=date(2026, 12, 10),
        )

    await ops.set_expected_discharge(conn, case, date(2026, 12, 20))

    assert {t.expected_discharge_date for t in await ops.for_case(conn, case)} == {
        date(2026, 12, 20)
    }


async def test_the_queue_of_finished_work_lists_only_that_status(
    conn: asyncpg.Connection,
) -> None:
    centre = ids("centre")
    made = await seed(conn, centre, 3)
    await ops.claim(conn, made[1].id, "coord-a", now=T0)
    await ops.complete(conn, made[1].id, "coord-a", {}, now=T0)

    done = await ops.queue(conn, centre, now=T0, statuses=("done",), service=SERVICE)

    assert [t.id for t in done] == [made[1].id]


@pytest.mark.parametrize(
    ("sort", "index"),
    [
        ("priority", "tasks_queue_priority"),
        ("deadline", "tasks_queue_deadline"),
        ("discharge", "tasks_queue_discharge"),
        ("created", "tasks_queue_created"),
    ],
)
async def test_each_sort_is_read_in_order_from_its_own_index(
    pool: asyncpg.Pool, sort: Sort, index: str
) -> None:
    """With table scans and sorting made prohibitively dear, the plan of a page (with a
    cursor and the filters) is a scan of the sort's index: the index serves both the
    filter and the order, whatever the table's size."""
    centre = ids("centre")
    async with pool.acquire() as conn, conn.transaction():
        made = await seed(conn, centre, 4)
        await conn.execute("SET LOCAL enable_seqscan = off")
        await conn.execute("SET LOCAL enable_sort = off")
        await conn.execute("SET LOCAL enable_bitmapscan = off")
        sql, args = ops.queue_query(
            centre,
            now=T0,
            kinds=["review", "delivery"],
            statuses=ops.LIVE,
            overdue_only=False,
            hospital_ids=["snuh"],
            sort=sort,
            after=Cursor.after(sort, SERVICE, made[0]),
            service=SERVICE,
            limit=50,
        )
        plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + sql, *args))

    assert f"Index Scan using {index}" in plan, plan
    assert "Sort" not in plan.replace("Sort Key", ""), plan
