"""The deadline watcher: overdue tasks raise one escalation each on care.escalations."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import TypeVar

import asyncpg

from contracts.cloudevents import Envelope
from contracts.escalations import TaskOverdue
from contracts.topics import ESCALATIONS
from services.lib.runtime import outbox
from services.lib.runtime.errors import describe, is_transient
from services.lib.runtime.logging import get_logger
from services.lib.runtime.metrics import ESCALATED, TASKS_OVERDUE
from services.lib.runtime.service import ServiceContext
from services.lib.tasks.settings import TaskSettings

log = get_logger(__name__)
T = TypeVar("T", bound=TaskSettings)


async def escalate_overdue(
    conn: asyncpg.Connection, *, service: str, now: datetime, limit: int = 200
) -> int:
    """Escalate up to `limit` overdue tasks once each; safe with several instances
    (SKIP LOCKED: two watchers never take the same task)."""
    async with conn.transaction():
        rows = await conn.fetch(
            """SELECT id, case_id, kind, centre_id, priority, due_at, status FROM tasks
               WHERE status IN ('open', 'claimed') AND escalated_at IS NULL AND due_at < $1
               ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED""",
            now,
            limit,
        )
        for row in rows:
            event = TaskOverdue(
                task_id=row["id"],
                service=service,
                case_id=row["case_id"],
                kind=row["kind"],
                centre_id=row["centre_id"],
                priority=row["priority"],
                due_at=row["due_at"],
                status=row["status"],
                detected_at=now,
            )
            envelope = Envelope.new(
                source=f"carelink/{service}",
                type=TaskOverdue.ce_type,
                subject=row["case_id"],
                event_id=f"{service}/task/{row['id']}/overdue",
            )
            await outbox.enqueue_event(
                conn, topic=ESCALATIONS, key=row["case_id"], envelope=envelope, data=event
            )
        if rows:
            await conn.execute(
                "UPDATE tasks SET escalated_at = $2 WHERE id = ANY($1::bigint[])",
                [r["id"] for r in rows],
                now,
            )
    if rows:
        log.warning("tasks overdue, escalated", count=len(rows))
    for row in rows:  # after the commit: only escalations that were written
        ESCALATED.labels(service, row["kind"]).inc()
    await count_overdue(conn, service=service, now=now)
    return len(rows)


async def count_overdue(conn: asyncpg.Connection, *, service: str, now: datetime) -> None:
    """Set carelink_tasks_overdue: live tasks past due, escalated or not (alerts see
    escalations pile up when nobody works them off)."""
    counts = dict.fromkeys(("routine", "urgent"), 0)
    for row in await conn.fetch(
        """SELECT priority, count(*) AS n FROM tasks
           WHERE status IN ('open', 'claimed') AND due_at < $1 GROUP BY priority""",
        now,
    ):
        counts[row["priority"]] = row["n"]
    for priority, n in counts.items():
        TASKS_OVERDUE.labels(service, priority).set(n)


def backoff_delay(failures: int, *, interval_s: float, max_s: float) -> float:
    """How long to wait after `failures` failed scans in a row: the interval, doubled per
    further failure, at most `max_s` (never less than the interval)."""
    if failures <= 0:
        return interval_s
    # The exponent is bounded: after days of failures 2**n would overflow a float.
    return min(interval_s * 2.0 ** min(failures - 1, 20), max(max_s, interval_s))


async def watch_deadlines(
    pool: asyncpg.Pool,
    *,
    service: str,
    stop: asyncio.Event,
    interval_s: float = 30.0,
    max_backoff_s: float = 300.0,
) -> None:
    """Scan for overdue tasks every `interval_s` until `stop` is set.

    No error ends the watcher: escalations are how people learn that work is late, and
    a watcher that died with one bad scan would stay silent until the next restart.
    A failed scan is logged (the error's type or safe text, never task data), the wait
    before the next one doubles per failure in a row up to `max_backoff_s`, and a stop
    ends any wait at once.
    """
    failures = 0
    while not stop.is_set():
        try:
            async with pool.acquire() as conn:
                await escalate_overdue(conn, service=service, now=datetime.now(UTC))
        except Exception as exc:
            failures += 1
            delay = backoff_delay(failures, interval_s=interval_s, max_s=max_backoff_s)
            # A passing fault (database restarting) is a warning; anything else is a bug.
            level = log.warning if is_transient(exc) else log.error
            level(
                "deadline scan failed, will retry",
                error=describe(exc),
                failures_in_a_row=failures,
                retry_in_s=round(delay, 2),
            )
        else:
            failures = 0
            delay = interval_s
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)


async def deadline_watcher(context: ServiceContext[T], stop: asyncio.Event) -> None:
    """The watcher as a task-owning service's extra task (see ServiceSpec.extra_tasks)."""
    await watch_deadlines(
        context.pool,
        service=context.settings.service,
        stop=stop,
        interval_s=context.settings.deadline_scan_interval_s,
    )
