"""services.lib.runtime.db: migrations that cannot run in a transaction
(`-- carelink: no-transaction`, for CREATE INDEX CONCURRENTLY), recovery of a concurrent
index build that failed midway, the lock timeout, and the advisory lock with both.
Real PostgreSQL; every test makes its own database."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
import pytest
import structlog

from services.lib.runtime import db
from services.tools.localinfra import Endpoints
from tests.integration.runtime_helpers import new_database, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

THINGS = "CREATE TABLE things (id bigint PRIMARY KEY, name text NOT NULL DEFAULT '');"
CONCURRENT_INDEX = """-- carelink: no-transaction
-- Built while the table is in use.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS things_name_key ON things (name);
"""


def _scratch(tmp_path: Path, files: dict[str, str]) -> list[db.Migration]:
    directory = tmp_path / "scratch"
    directory.mkdir(exist_ok=True)
    for name, sql in files.items():
        (directory / name).write_text(sql, encoding="utf-8")
    return db.load_migrations([("scratch", directory)])


async def _index(conn: asyncpg.Connection, name: str) -> bool | None:
    """True valid, False invalid (a failed concurrent build), None absent."""
    valid: bool | None = await conn.fetchval(
        """SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
           WHERE c.relname = $1""",
        name,
    )
    return valid


async def _recorded(conn: asyncpg.Connection) -> dict[str, str]:
    rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
    return {r["version"]: r["checksum"] for r in rows}


def test_the_marker_the_one_statement_and_if_not_exists_are_checked_at_load(
    tmp_path: Path,
) -> None:
    [migration] = _scratch(tmp_path, {"0001_index.sql": CONCURRENT_INDEX})
    assert not migration.transactional
    assert migration.index_built() == ("things_name_key", "things")
    assert db.Migration("x:1", THINGS).transactional
    # The marker counts on the first line only.
    assert db.Migration("x:2", "-- first\n-- carelink: no-transaction\nSELECT 1").transactional

    refused = {
        "two statements": "-- carelink: no-transaction\nSELECT 1;\nSELECT 2;\n",
        "no IF NOT EXISTS": "-- carelink: no-transaction\n"
        "CREATE INDEX CONCURRENTLY things_id ON things (id);",
        "no name": "-- carelink: no-transaction\nCREATE INDEX CONCURRENTLY ON things (id);",
        "empty": "-- carelink: no-transaction\n-- nothing\n",
    }
    for case, sql in refused.items():
        directory = tmp_path / case.replace(" ", "_")
        directory.mkdir()
        (directory / "0001_bad.sql").write_text(sql, encoding="utf-8")
        with pytest.raises(db.MigrationError, match=r"scratch:0001_bad runs outside a transaction"):
            db.load_migrations([("scratch", directory)])


async def test_a_no_transaction_migration_runs_alone_and_is_recorded(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    url = await new_database(endpoints)
    migrations = _scratch(
        tmp_path, {"0001_things.sql": THINGS, "0002_things_name_key.sql": CONCURRENT_INDEX}
    )
    conn = await asyncpg.connect(url)
    try:
        with structlog.testing.capture_logs() as logs:
            applied = await db.migrate(conn, migrations)
        recorded = await _recorded(conn)
        valid = await _index(conn, "things_name_key")
        # Outside a transaction: CREATE INDEX CONCURRENTLY refuses to run inside one.
        with pytest.raises(asyncpg.ActiveSQLTransactionError):
            async with conn.transaction():
                await conn.execute(migrations[1].sql)
    finally:
        await conn.close()
    assert applied == ["scratch:0001_things", "scratch:0002_things_name_key"]
    assert recorded == {m.version: m.checksum for m in migrations}
    assert valid is True
    assert [e["transaction"] for e in logs if e["event"] == "migration applied"] == [True, False]


async def test_a_crash_between_the_build_and_its_record_runs_it_again_harmlessly(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    url = await new_database(endpoints)
    migrations = _scratch(
        tmp_path, {"0001_things.sql": THINGS, "0002_things_name_key.sql": CONCURRENT_INDEX}
    )
    conn = await asyncpg.connect(url)
    try:
        await db.migrate(conn, migrations[:1])
        # The index was built, then the service died before recording it.
        await conn.execute(migrations[1].sql)
        applied = await db.migrate(conn, migrations)
        recorded = await _recorded(conn)
        valid = await _index(conn, "things_name_key")
    finally:
        await conn.close()
    assert applied == ["scratch:0002_things_name_key"]
    assert set(recorded) == {m.version for m in migrations}
    assert valid is True


async def test_an_invalid_index_left_by_a_failed_concurrent_build_is_dropped_and_rebuilt(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    """A concurrent build that fails midway (here on duplicate names; a crash or a lock
    timeout does the same) leaves an INVALID index, which IF NOT EXISTS alone would keep
    for ever: never used by queries, yet written on every insert."""
    url = await new_database(endpoints)
    migrations = _scratch(
        tmp_path, {"0001_things.sql": THINGS, "0002_things_name_key.sql": CONCURRENT_INDEX}
    )
    conn = await asyncpg.connect(url)
    try:
        await db.migrate(conn, migrations[:1])
        await conn.execute("INSERT INTO things (id, name) VALUES (1, 'same'), (2, 'same')")
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(migrations[1].sql)
        leftover = await _index(conn, "things_name_key")
        await conn.execute("UPDATE things SET name = 'other' WHERE id = 2")

        with structlog.testing.capture_logs() as logs:
            applied = await db.migrate(conn, migrations)
        valid = await _index(conn, "things_name_key")
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute("INSERT INTO things (id, name) VALUES (3, 'same')")
    finally:
        await conn.close()
    assert leftover is False
    assert applied == ["scratch:0002_things_name_key"]
    assert valid is True
    [dropped] = [e for e in logs if e["event"].startswith("dropping an invalid index")]
    assert dropped["index"] == "public.things_name_key"
    assert dropped["version"] == "scratch:0002_things_name_key"


async def test_the_lock_timeout_fails_a_migration_behind_a_busy_table_and_names_it(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    url = await new_database(endpoints)
    migrations = _scratch(
        tmp_path,
        {
            "0001_things.sql": THINGS,
            "0002_things_size.sql": "ALTER TABLE things ADD COLUMN size int;",
        },
    )
    conn, holder, reader = [await asyncpg.connect(url) for _ in range(3)]
    try:
        await db.migrate(conn, migrations[:1])
        before = await conn.fetchval("SHOW lock_timeout")
        # A long transaction has read the table: ALTER TABLE must wait for it to end.
        holding = holder.transaction()
        await holding.start()
        await holder.fetch("SELECT * FROM things")

        started = time.monotonic()
        migrating = asyncio.create_task(db.migrate(conn, migrations, lock_timeout_s=0.5))
        await asyncio.sleep(0.2)
        # Traffic queued behind the waiting ALTER TABLE goes on once the migration gives up,
        # while the long transaction is still open.
        read = await asyncio.wait_for(reader.fetchval("SELECT count(*) FROM things"), 5)
        with pytest.raises(db.MigrationError) as failed:
            await migrating
        took = time.monotonic() - started
        still_holding = holder.is_in_transaction()

        after = await conn.fetchval("SHOW lock_timeout")
        size_column = await conn.fetchval(
            "SELECT count(*) FROM information_schema.columns"
            " WHERE table_name = 'things' AND column_name = 'size'"
        )
        recorded = await _recorded(conn)
        await holding.rollback()
        # The next start applies it.
        applied = await db.migrate(conn, migrations, lock_timeout_s=0.5)
    finally:
        for c in (conn, holder, reader):
            await c.close()

    message = str(failed.value)
    assert "migration scratch:0002_things_size waited more than 0.5 s for a lock" in message
    assert "nothing of it was applied" in message
    assert "CARELINK_MIGRATION_LOCK_TIMEOUT_S" in message
    assert isinstance(failed.value.__cause__, asyncpg.LockNotAvailableError)
    assert took < 5
    assert read == 0
    assert still_holding
    assert size_column == 0
    assert "scratch:0002_things_size" not in recorded
    assert after == before  # the session's own setting is back
    assert applied == ["scratch:0002_things_size"]


async def test_a_concurrent_build_that_times_out_is_rebuilt_at_the_next_start(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    """CREATE INDEX CONCURRENTLY waits for every transaction older than its build: one that
    runs too long makes it fail on the lock timeout, leaving an INVALID index behind."""
    url = await new_database(endpoints)
    migrations = _scratch(
        tmp_path, {"0001_things.sql": THINGS, "0002_things_name_key.sql": CONCURRENT_INDEX}
    )
    conn, long_running = await asyncpg.connect(url), await asyncpg.connect(url)
    try:
        await db.migrate(conn, migrations[:1])
        report = long_running.transaction(isolation="repeatable_read")
        await report.start()
        await long_running.fetchval("SELECT 1")  # holds its snapshot from now on

        with pytest.raises(db.MigrationError) as failed:
            await db.migrate(conn, migrations, lock_timeout_s=0.5)
        leftover = await _index(conn, "things_name_key")
        recorded = await _recorded(conn)
        await report.rollback()

        applied = await db.migrate(conn, migrations, lock_timeout_s=0.5)
        valid = await _index(conn, "things_name_key")
    finally:
        await conn.close()
        await long_running.close()
    assert "migration scratch:0002_things_name_key waited more than 0.5 s" in str(failed.value)
    assert "dropped and built again" in str(failed.value)
    assert leftover is False
    assert "scratch:0002_things_name_key" not in recorded
    assert applied == ["scratch:0002_things_name_key"]
    assert valid is True


async def test_an_instance_waiting_for_the_migration_lock_does_not_stall_a_concurrent_build(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    """While one instance builds an index concurrently, another waits for the migration
    lock. A session blocked in pg_advisory_lock would hold a snapshot the build waits
    for: a deadlock. The waiting instance polls instead, and still applies nothing until
    the lock is free."""
    url = await new_database(endpoints)
    migrations = _scratch(
        tmp_path, {"0001_things.sql": THINGS, "0002_things_name_key.sql": CONCURRENT_INDEX}
    )
    first, second = await asyncpg.connect(url), await asyncpg.connect(url)
    try:
        await db.migrate(first, migrations[:1])
        # The first instance is in the middle of its migrations.
        await first.execute("SELECT pg_advisory_lock($1)", db._MIGRATION_LOCK)
        with structlog.testing.capture_logs() as logs:
            waiting = asyncio.create_task(db.migrate(second, migrations))

            async def second_is_waiting() -> bool:
                return any(e["event"].startswith("another instance is migrating") for e in logs)

            await wait_until(second_is_waiting, timeout=5, what="second instance waiting")
            await asyncio.wait_for(
                first.execute("CREATE INDEX CONCURRENTLY things_id_name ON things (id, name)"),
                10,
            )
            await asyncio.sleep(0.5)
            still_waiting = not waiting.done()
            await first.execute("SELECT pg_advisory_unlock($1)", db._MIGRATION_LOCK)
            applied = await asyncio.wait_for(waiting, 10)
        built = await _index(first, "things_id_name")
    finally:
        await first.close()
        await second.close()
    assert built is True
    assert still_waiting
    assert applied == ["scratch:0002_things_name_key"]
