"""The deadline watcher survives any error (issue 8): it logs it without task data, backs
off, and the next scan still escalates; it stops promptly when told to.

Real PostgreSQL. The fault is injected once into a scan by a pool wrapper that hands out
real connections and raises inside the scan's `async with` the first time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
import structlog

import services.lib.tasks
from contracts.topics import ESCALATIONS
from services.lib.runtime import db
from services.lib.tasks import operations as ops
from services.lib.tasks.deadlines import watch_deadlines
from services.tools.localinfra import Endpoints, ensure_databases

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

# What a careless log line could leak: it must never appear in the watcher's logs.
PERSONAL = "홍길순 010-7319-4682"


class _FailingOnce:
    """A pool whose first `acquire()` fails inside the scan with `error`; later ones are real."""

    def __init__(self, pool: asyncpg.Pool, error: BaseException) -> None:
        self._pool = pool
        self._error: BaseException | None = error
        self.scans = 0

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        self.scans += 1
        async with self._pool.acquire() as conn:
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            yield conn


async def _pool(endpoints: Endpoints) -> asyncpg.Pool:
    name = f"dw_{uuid.uuid4().hex[:10]}"
    url = (await ensure_databases(endpoints.postgres_url, [name]))[name]
    conn = await asyncpg.connect(url)
    try:
        await db.migrate(
            conn,
            db.load_migrations(
                [("runtime", db.RUNTIME_MIGRATIONS), ("tasks", services.lib.tasks.MIGRATIONS)]
            ),
        )
    finally:
        await conn.close()
    return await db.create_pool(url, min_size=1, max_size=3)


async def _wait_for_escalations(pool: asyncpg.Pool, count: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        async with pool.acquire() as conn:
            found: int = await conn.fetchval(
                "SELECT count(*) FROM outbox WHERE topic = $1", ESCALATIONS
            )
        if found >= count or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    "error",
    [
        KeyError(PERSONAL),  # a bug in the scan
        ValueError(PERSONAL),
        ConnectionResetError(104, PERSONAL),  # the database went away
    ],
    ids=["bug-keyerror", "bug-valueerror", "connection-reset"],
)
async def test_a_failed_scan_is_logged_and_the_next_scan_still_escalates(
    endpoints: Endpoints, error: BaseException
) -> None:
    pool = await _pool(endpoints)
    stop = asyncio.Event()
    try:
        async with pool.acquire() as conn:
            task = await ops.create(
                conn,
                case_id="case-overdue",
                kind="review",
                centre_id="songpa-care-sos",
                priority="urgent",
                due_at=datetime.now(UTC) - timedelta(hours=1),
            )
        failing = _FailingOnce(pool, error)
        with structlog.testing.capture_logs() as logs:
            watcher = asyncio.create_task(
                watch_deadlines(
                    failing,  # type: ignore[arg-type]
                    service="referral",
                    stop=stop,
                    interval_s=0.05,
                )
            )
            escalated = await _wait_for_escalations(pool, 1, timeout=10)
            alive_after_the_failure = not watcher.done()
            stop.set()
            await asyncio.wait_for(watcher, 5)
        async with pool.acquire() as conn:
            marked = await conn.fetchval("SELECT escalated_at FROM tasks WHERE id = $1", task.id)
    finally:
        stop.set()
        await asyncio.wait_for(pool.close(), 10)

    assert alive_after_the_failure
    assert escalated == 1
    assert marked is not None
    assert failing.scans >= 2
    failures = [e for e in logs if "failed" in e["event"]]
    assert len(failures) == 1
    assert failures[0]["error"] == type(error).__name__
    assert PERSONAL not in repr(logs)


async def test_the_watcher_stops_promptly_even_while_backing_off() -> None:
    stop = asyncio.Event()

    class _AlwaysFailing:
        def acquire(self) -> Any:
            raise ConnectionRefusedError(111, "database unavailable")

    watcher = asyncio.create_task(
        watch_deadlines(
            _AlwaysFailing(),  # type: ignore[arg-type]
            service="referral",
            stop=stop,
            interval_s=30.0,
        )
    )
    try:
        await asyncio.sleep(0.2)  # the first scan failed; the watcher now waits
        assert not watcher.done()
        started = time.monotonic()
        stop.set()
        await asyncio.wait_for(watcher, 5)
        stopped_in = time.monotonic() - started
    finally:
        stop.set()
        watcher.cancel()
    assert stopped_in < 1.0
