"""Table retention: the outbox and the inbox stay bounded.

Every service runs this job in its lifespan. On an interval it deletes
- outbox rows published more than `outbox_retention_hours` ago (the relay needs a row
  only until the broker acknowledged it; rows not yet published, and rows set aside
  because the broker refused them, have no `published_at` and are never deleted);
- inbox rows last written more than `inbox_retention_days` ago, handled or
  dead-lettered alike: by then no copy of the event can reach the consumer any more,
  neither a redelivery nor a replay of its dead letter (the floor and its reasoning:
  `INBOX_RETENTION_FLOOR_DAYS` in settings.py, against the topics' retention in
  contracts/topics.py).

Deletes go in batches of `retention_batch_size` rows, oldest first, each its own short
transaction, with a pause between batches: the job never holds many row locks for
long, and a handler waits for it at most one batch. Rows a handler holds are skipped
(SKIP LOCKED), not waited for, and a row a handler wrote again meanwhile (a replayed
dead letter) is young again and stays. Several instances of a service may run the job
at once: they skip each other's rows.

Like the deadline watcher, no error ends the job: a failed run is logged, the wait
before the next one doubles per failure in a row (capped), and a stop ends any wait,
and a run between two batches, at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

import asyncpg

from services.lib.runtime.errors import describe, is_transient
from services.lib.runtime.logging import get_logger
from services.lib.runtime.metrics import RETENTION_DELETED
from services.lib.runtime.settings import ServiceSettings

log = get_logger(__name__)

Table = Literal["outbox", "inbox"]

# One statement per batch. The oldest rows past the cut-off are found through the
# indexes of migrations 0005/0006 and locked, SKIP LOCKED: never waiting for a handler or
# another instance. FOR UPDATE checks the age again on the newest version of a row that
# changed since the statement began (a replay rewrote it): such a row is not picked. The
# picked rows stay locked until the DELETE of the same statement removes them by ctid
# (a TID scan; the inbox's key is three columns), so nothing can change them in between.
_DELETE: dict[Table, str] = {
    "outbox": """DELETE FROM outbox WHERE ctid = ANY(ARRAY(
                     SELECT ctid FROM outbox WHERE published_at < $1
                     ORDER BY published_at LIMIT $2 FOR UPDATE SKIP LOCKED))""",
    "inbox": """DELETE FROM inbox WHERE ctid = ANY(ARRAY(
                    SELECT ctid FROM inbox WHERE handled_at < $1
                    ORDER BY handled_at LIMIT $2 FOR UPDATE SKIP LOCKED))""",
}
# A batch waits at most this long for a table lock (a migration altering the table):
# it then fails, and the run is tried again later.
_LOCK_TIMEOUT = "2s"


@dataclass(frozen=True)
class RetentionPolicy:
    outbox_age: timedelta
    inbox_age: timedelta
    batch_size: int = 1000
    pause_s: float = 0.1
    interval_s: float = 600.0
    max_backoff_s: float = 3600.0

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"retention batch size must be >= 1, not {self.batch_size}")
        if self.interval_s <= 0:
            raise ValueError(f"retention interval must be positive, not {self.interval_s}")

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> RetentionPolicy:
        return cls(
            outbox_age=timedelta(hours=settings.outbox_retention_hours),
            inbox_age=timedelta(days=settings.inbox_retention_days),
            batch_size=settings.retention_batch_size,
            pause_s=settings.retention_pause_s,
            interval_s=settings.retention_interval_s,
        )


@dataclass(frozen=True)
class Removed:
    outbox: int = 0
    inbox: int = 0


async def delete_batch(conn: asyncpg.Connection, table: Table, cutoff: object, limit: int) -> int:
    """Delete up to `limit` of the oldest rows of `table` older than `cutoff`; returns how
    many were deleted."""
    async with conn.transaction():
        await conn.execute("SELECT set_config('lock_timeout', $1, true)", _LOCK_TIMEOUT)
        status: str = await conn.execute(_DELETE[table], cutoff, limit)
    return int(status.rsplit(" ", 1)[-1])  # "DELETE <n>"


async def purge(
    pool: asyncpg.Pool,
    *,
    service: str,
    policy: RetentionPolicy,
    stop: asyncio.Event | None = None,
) -> Removed:
    """One run: delete every expired row of both tables, batch after batch, until none is
    left or `stop` is set. The cut-offs come from the database's clock, as the rows'
    timestamps do."""
    removed: dict[Table, int] = {"outbox": 0, "inbox": 0}
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT now() - $1::interval AS outbox, now() - $2::interval AS inbox",
            policy.outbox_age,
            policy.inbox_age,
        )
    if row is None:  # pragma: no cover - a SELECT without FROM always returns one row
        return Removed()
    cutoffs: dict[Table, object] = {"outbox": row["outbox"], "inbox": row["inbox"]}
    try:
        for table in ("outbox", "inbox"):
            while stop is None or not stop.is_set():
                async with pool.acquire() as conn:
                    count = await delete_batch(conn, table, cutoffs[table], policy.batch_size)
                if count:
                    removed[table] += count
                    RETENTION_DELETED.labels(service, table).inc(count)
                if count < policy.batch_size:
                    break
                # Room for the handlers between two batches; a stop cuts the pause short.
                if await _sleep_or_stop(stop, policy.pause_s):
                    break
    finally:
        # Also when a batch failed: what the batches before it removed is gone.
        if removed["outbox"] or removed["inbox"]:
            log.info(
                "retention removed expired rows",
                outbox_rows=removed["outbox"],
                inbox_rows=removed["inbox"],
            )
    return Removed(outbox=removed["outbox"], inbox=removed["inbox"])


def backoff_delay(failures: int, *, interval_s: float, max_s: float) -> float:
    """The wait after `failures` failed runs in a row: the interval, doubled per further
    failure, at most `max_s` (never less than the interval)."""
    if failures <= 0:
        return interval_s
    return min(interval_s * 2.0 ** min(failures - 1, 20), max(max_s, interval_s))


async def run_retention(
    pool: asyncpg.Pool, *, service: str, policy: RetentionPolicy, stop: asyncio.Event
) -> None:
    """Purge every `policy.interval_s` until `stop` is set; no error ends it."""
    for table in ("outbox", "inbox"):
        RETENTION_DELETED.labels(service, table)  # exported at 0 from the start
    failures = 0
    while not stop.is_set():
        try:
            await purge(pool, service=service, policy=policy, stop=stop)
        except Exception as exc:
            failures += 1
            delay = backoff_delay(
                failures, interval_s=policy.interval_s, max_s=policy.max_backoff_s
            )
            # A passing fault (database restarting) is a warning; anything else is a bug.
            level = log.warning if is_transient(exc) else log.error
            level(
                "retention run failed, will retry",
                error=describe(exc),
                failures_in_a_row=failures,
                retry_in_s=round(delay, 2),
            )
        else:
            failures = 0
            delay = policy.interval_s
        await _sleep_or_stop(stop, delay)


async def _sleep_or_stop(stop: asyncio.Event | None, seconds: float) -> bool:
    """Sleep, returning True at once when `stop` is set."""
    if stop is None:
        await asyncio.sleep(seconds)
        return False
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    return stop.is_set()
