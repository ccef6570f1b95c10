"""Table retention (issue 11): expired published outbox rows and inbox rows are deleted in
batches; recent, unpublished and set-aside rows stay; the job survives errors and stops at
once. Real PostgreSQL, the runtime's own migrations (0005/0006 build the indexes)."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
import structlog
from pydantic import ValidationError

from services.lib.runtime import retention
from services.lib.runtime.metrics import RETENTION_DELETED
from services.lib.runtime.retention import RetentionPolicy, delete_batch, purge, run_retention
from services.lib.runtime.settings import INBOX_RETENTION_FLOOR_DAYS, ServiceSettings
from services.tools.localinfra import Endpoints
from services.tools.stack import SystemInfo
from services.tools.stack.deployables import SERVICES
from tests.integration.runtime_helpers import migrated_database, pool_for, unique, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

POLICY = RetentionPolicy(
    outbox_age=timedelta(days=7), inbox_age=timedelta(days=60), batch_size=10, pause_s=0
)


async def _outbox(
    conn: asyncpg.Connection,
    n: int,
    *,
    topic: str,
    created_ago: str,
    published_ago: str | None,
    set_aside: bool = False,
) -> None:
    await conn.execute(
        """INSERT INTO outbox (topic, value, created_at, published_at, failed_at, error)
           SELECT $1, '\\x00'::bytea, now() - $2::text::interval,
                  now() - $3::text::interval - make_interval(secs => g),
                  CASE WHEN $4 THEN now() - $2::text::interval END,
                  CASE WHEN $4 THEN 'MessageSizeTooLargeError' END
           FROM generate_series(1, $5) AS g""",
        topic,
        created_ago,
        published_ago,
        set_aside,
        n,
    )


async def _inbox(conn: asyncpg.Connection, n: int, *, consumer: str, ago: str, status: str) -> None:
    await conn.execute(
        """INSERT INTO inbox (consumer, source, event_id, status, handled_at)
           SELECT $1, 'it/test', $1 || '-' || g, $2, now() - $3::text::interval - make_interval(secs => g)
           FROM generate_series(1, $4) AS g""",
        consumer,
        status,
        ago,
        n,
    )


async def _counts(conn: asyncpg.Connection, table: str, column: str) -> dict[str, int]:
    rows = await conn.fetch(f"SELECT {column} AS k, count(*) AS n FROM {table} GROUP BY 1")
    return {r["k"]: r["n"] for r in rows}


async def test_expired_rows_go_in_batches_and_everything_else_stays(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    url = await migrated_database(endpoints, tmp_path)
    service = unique("svc")
    async with pool_for(url) as pool:
        async with pool.acquire() as conn:
            await _outbox(
                conn, 25, topic="old-published", created_ago="9 days", published_ago="8 days"
            )
            await _outbox(
                conn, 3, topic="recent-published", created_ago="2 hours", published_ago="1 hour"
            )
            # Never published, however old: the relay still owes them to the broker.
            await _outbox(
                conn, 2, topic="old-unpublished", created_ago="30 days", published_ago=None
            )
            # Set aside by the relay: waiting for `carelink outbox requeue`.
            await _outbox(
                conn,
                2,
                topic="old-set-aside",
                created_ago="30 days",
                published_ago=None,
                set_aside=True,
            )
            await _inbox(conn, 17, consumer="old-handled", ago="61 days", status="handled")
            await _inbox(conn, 4, consumer="old-dead", ago="61 days", status="dead-lettered")
            await _inbox(conn, 3, consumer="recent-handled", ago="44 days", status="handled")
            # Dead-lettered 10 days ago: its dead letter may still be replayed.
            await _inbox(conn, 2, consumer="recent-dead", ago="10 days", status="dead-lettered")
        before = {
            kind: RETENTION_DELETED.labels(service, kind)._value.get()
            for kind in ("outbox", "inbox")
        }

        # One batch: the 10 oldest expired rows, nothing else.
        async with pool.acquire() as conn:
            cutoff = await conn.fetchval("SELECT now() - interval '7 days'")
            oldest = await conn.fetch(
                "SELECT id FROM outbox WHERE topic = 'old-published' ORDER BY published_at LIMIT 10"
            )
            assert await delete_batch(conn, "outbox", cutoff, 10) == 10
            left = {r["id"] for r in await conn.fetch("SELECT id FROM outbox")}
        assert not left & {r["id"] for r in oldest}

        with structlog.testing.capture_logs() as logs:
            removed = await purge(pool, service=service, policy=POLICY)
        async with pool.acquire() as conn:
            outbox = await _counts(conn, "outbox", "topic")
            inbox = await _counts(conn, "inbox", "consumer")
            statuses = await _counts(conn, "inbox", "status")

    assert removed == retention.Removed(outbox=15, inbox=21)
    assert outbox == {"recent-published": 3, "old-unpublished": 2, "old-set-aside": 2}
    assert inbox == {"recent-handled": 3, "recent-dead": 2}
    assert statuses == {"handled": 3, "dead-lettered": 2}
    assert RETENTION_DELETED.labels(service, "outbox")._value.get() - before["outbox"] == 15
    assert RETENTION_DELETED.labels(service, "inbox")._value.get() - before["inbox"] == 21
    [line] = [e for e in logs if e["event"] == "retention removed expired rows"]
    assert (line["outbox_rows"], line["inbox_rows"]) == (15, 21)


async def test_each_batch_commits_on_its_own_and_never_waits_for_a_handler(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    url = await migrated_database(endpoints, tmp_path)
    async with pool_for(url) as pool:
        async with pool.acquire() as conn:
            await _inbox(conn, 35, consumer="old", ago="90 days", status="handled")
        # A handler's transaction holds one expired row (a replay rewriting it).
        handler = await asyncpg.connect(url)
        try:
            tx = handler.transaction()
            await tx.start()
            await handler.execute(
                "UPDATE inbox SET status = 'handled' WHERE consumer = 'old' AND event_id = 'old-7'"
            )
            started = time.monotonic()
            removed = await asyncio.wait_for(purge(pool, service="it", policy=POLICY), 10)
            took = time.monotonic() - started
            # The batches before are committed while the handler's transaction is still open.
            seen_by_handler = await handler.fetchval("SELECT count(*) FROM inbox")
            await tx.rollback()
        finally:
            await handler.close()
        again = await purge(pool, service="it", policy=POLICY)

    assert removed.inbox == 34
    assert took < 5
    assert seen_by_handler == 1
    assert again.inbox == 1


async def test_a_row_written_again_after_the_cutoff_stays(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    """The age is checked on the row being deleted, not only when it was picked."""
    url = await migrated_database(endpoints, tmp_path)
    async with pool_for(url) as pool, pool.acquire() as conn:
        await _inbox(conn, 3, consumer="dead", ago="90 days", status="dead-lettered")
        cutoff = await conn.fetchval("SELECT now() - interval '60 days'")
        # A replay handles the dead-lettered event after the run took its cut-off.
        await conn.execute(
            "UPDATE inbox SET status = 'handled', handled_at = now() WHERE event_id = 'dead-2'"
        )
        deleted = await delete_batch(conn, "inbox", cutoff, 10)
        left = await conn.fetch("SELECT event_id, status FROM inbox")
    assert deleted == 2
    assert [(r["event_id"], r["status"]) for r in left] == [("dead-2", "handled")]


async def test_the_deletes_find_expired_rows_through_the_indexes(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    url = await migrated_database(endpoints, tmp_path)
    async with pool_for(url) as pool, pool.acquire() as conn:
        valid = await conn.fetch(
            """SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
               WHERE c.relname IN ('outbox_published_at', 'inbox_handled_at')"""
        )
        await _outbox(conn, 20_000, topic="recent", created_ago="1 hour", published_ago="1 hour")
        await _outbox(conn, 20, topic="old", created_ago="9 days", published_ago="8 days")
        await _inbox(conn, 20_000, consumer="recent", ago="1 day", status="handled")
        await _inbox(conn, 20, consumer="old", ago="90 days", status="handled")
        await conn.execute("ANALYZE outbox")
        await conn.execute("ANALYZE inbox")
        plans = {}
        for table, delete in retention._DELETE.items():
            sql = delete.replace("$1", "now() - interval '7 days'").replace("$2", "1000")
            plans[table] = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {sql}"))
    assert {r["relname"]: r["indisvalid"] for r in valid} == {
        "outbox_published_at": True,
        "inbox_handled_at": True,
    }
    assert "outbox_published_at" in plans["outbox"], plans["outbox"]
    assert "inbox_handled_at" in plans["inbox"], plans["inbox"]
    # The DELETE itself goes straight to the picked rows.
    assert "Tid Scan on outbox" in plans["outbox"], plans["outbox"]
    assert "Tid Scan on inbox" in plans["inbox"], plans["inbox"]


async def test_the_job_survives_a_failed_run_and_goes_on(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    url = await migrated_database(endpoints, tmp_path)
    policy = RetentionPolicy(
        outbox_age=timedelta(days=7),
        inbox_age=timedelta(days=60),
        batch_size=10,
        pause_s=0,
        interval_s=0.05,
        max_backoff_s=0.2,
    )
    stop = asyncio.Event()
    async with pool_for(url) as pool:
        async with pool.acquire() as conn:
            await _inbox(conn, 12, consumer="old", ago="90 days", status="handled")
            # A real failure: the table is not there (a bad deploy, a restore in progress).
            await conn.execute("ALTER TABLE inbox RENAME TO inbox_away")

        async def failed_twice() -> bool:
            failed = [e for e in logs if e["event"] == "retention run failed, will retry"]
            return len(failed) >= 2

        async def inbox_empty() -> bool:
            async with pool.acquire() as conn:
                left: int = await conn.fetchval("SELECT count(*) FROM inbox")
            return left == 0

        with structlog.testing.capture_logs() as logs:
            job = asyncio.create_task(run_retention(pool, service="it", policy=policy, stop=stop))
            try:
                await wait_until(failed_twice, timeout=10, what="two failed runs")
                alive_after_failures = not job.done()
                async with pool.acquire() as conn:
                    await conn.execute("ALTER TABLE inbox_away RENAME TO inbox")
                await wait_until(inbox_empty, timeout=10, what="expired inbox rows deleted")
            finally:
                stop.set()
                await asyncio.wait_for(job, 5)

    assert alive_after_failures
    failed = [e for e in logs if e["event"] == "retention run failed, will retry"]
    assert len(failed) >= 2
    assert failed[0]["error"] == "UndefinedTableError"
    assert failed[0]["log_level"] == "error"  # not a passing fault: someone should look
    assert [e["failures_in_a_row"] for e in failed[:2]] == [1, 2]
    assert failed[1]["retry_in_s"] > failed[0]["retry_in_s"]  # backing off
    assert any(e["event"] == "retention removed expired rows" for e in logs)


async def test_the_job_stops_at_once_while_waiting_or_backing_off(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    url = await migrated_database(endpoints, tmp_path)
    slow = RetentionPolicy(
        outbox_age=timedelta(days=7),
        inbox_age=timedelta(days=60),
        interval_s=3600,
        max_backoff_s=3600,
    )
    async with pool_for(url) as pool:
        for broken in (False, True):
            if broken:
                async with pool.acquire() as conn:
                    await conn.execute("ALTER TABLE outbox RENAME TO outbox_away")
            stop = asyncio.Event()
            job = asyncio.create_task(run_retention(pool, service="it", policy=slow, stop=stop))
            await asyncio.sleep(0.3)  # one run done (or failed), now waiting an hour
            assert not job.done()
            started = time.monotonic()
            stop.set()
            await asyncio.wait_for(job, 2)
            assert time.monotonic() - started < 1


async def test_a_stop_between_batches_ends_the_run(endpoints: Endpoints, tmp_path: Path) -> None:
    url = await migrated_database(endpoints, tmp_path)
    policy = RetentionPolicy(
        outbox_age=timedelta(days=7), inbox_age=timedelta(days=60), batch_size=5, pause_s=30
    )
    stop = asyncio.Event()
    async with pool_for(url) as pool:
        async with pool.acquire() as conn:
            await _inbox(conn, 20, consumer="old", ago="90 days", status="handled")
        run = asyncio.create_task(purge(pool, service="it", policy=policy, stop=stop))
        await asyncio.sleep(0.5)  # the first batch is done, the pause has begun
        stop.set()
        removed = await asyncio.wait_for(run, 2)
    assert removed.inbox == 5


async def test_every_running_service_runs_the_job_on_indexed_tables(
    system_info: SystemInfo,
) -> None:
    """The four services as processes: each started the job (its counter is exported) and
    its migrations built both indexes, valid, outside a transaction."""
    for service in SERVICES:
        text = await asyncio.to_thread(_scrape, system_info.metrics[service])
        for kind in ("outbox", "inbox"):
            sample = f'carelink_retention_deleted_total{{kind="{kind}",service="{service}"}}'
            assert sample in text, service
        conn = await asyncpg.connect(system_info.databases[service])
        try:
            valid = await conn.fetch(
                """SELECT c.relname, i.indisvalid FROM pg_index i
                   JOIN pg_class c ON c.oid = i.indexrelid
                   WHERE c.relname IN ('outbox_published_at', 'inbox_handled_at')"""
            )
        finally:
            await conn.close()
        assert {r["relname"]: r["indisvalid"] for r in valid} == {
            "outbox_published_at": True,
            "inbox_handled_at": True,
        }, service


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:  # loopback only
        body: bytes = response.read()
    return body.decode()


def test_settings_refuse_an_inbox_retention_shorter_than_any_redelivery() -> None:
    assert INBOX_RETENTION_FLOOR_DAYS == 30 + 14 + 1  # longest topic + dead letters + a day
    defaults = ServiceSettings(service="it")
    assert defaults.outbox_retention_hours == 7 * 24
    assert defaults.inbox_retention_days >= INBOX_RETENTION_FLOOR_DAYS
    assert ServiceSettings(service="it", inbox_retention_days=45).inbox_retention_days == 45
    with pytest.raises(ValidationError, match="CARELINK_INBOX_RETENTION_DAYS=30 is too short"):
        ServiceSettings(service="it", inbox_retention_days=30)
    policy = RetentionPolicy.from_settings(defaults)
    assert policy.outbox_age == timedelta(days=7)
    assert policy.inbox_age == timedelta(days=defaults.inbox_retention_days)
