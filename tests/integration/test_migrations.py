"""services.lib.runtime.db: versioned migrations under an advisory lock, and the pool."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import asyncpg
import pytest

from services.lib.runtime import db
from services.tools.localinfra import Endpoints
from tests.integration.runtime_helpers import new_database, pool_for

pytestmark = pytest.mark.integration

SCRATCH = {
    "0001_things.sql": "CREATE TABLE things (id bigint PRIMARY KEY);",
    # Depends on 0001: only works when applied after it.
    "0002_things_name.sql": "ALTER TABLE things ADD COLUMN name text NOT NULL DEFAULT '';",
    "0010_things_index.sql": "CREATE INDEX things_name ON things (name);",
}


def _scratch_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "scratch"
    directory.mkdir()
    for name, sql in SCRATCH.items():
        (directory / name).write_text(sql, encoding="utf-8")
    return directory


def _scopes(scratch: Path) -> list[tuple[str, Path]]:
    return [("runtime", db.RUNTIME_MIGRATIONS), ("scratch", scratch)]


def _expected_versions() -> list[str]:
    runtime = sorted(p.stem for p in db.RUNTIME_MIGRATIONS.glob("*.sql"))
    return [f"runtime:{v}" for v in runtime] + [f"scratch:{Path(n).stem}" for n in sorted(SCRATCH)]


async def test_runtime_and_scratch_migrations_apply_in_order_and_record_checksums(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    url = await new_database(endpoints)
    migrations = db.load_migrations(_scopes(_scratch_dir(tmp_path)))
    assert [m.version for m in migrations] == _expected_versions()

    conn = await asyncpg.connect(url)
    try:
        applied = await db.migrate(conn, migrations)
        recorded = await conn.fetch(
            "SELECT version, checksum FROM schema_migrations ORDER BY applied_at, version"
        )
        tables = {
            r["tablename"]
            for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")
        }
        columns = await conn.fetch(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_name = 'things' ORDER BY ordinal_position"
        )
    finally:
        await conn.close()

    assert applied == _expected_versions()
    files = {
        f"runtime:{p.stem}": p.read_text(encoding="utf-8")
        for p in db.RUNTIME_MIGRATIONS.glob("*.sql")
    } | {f"scratch:{Path(n).stem}": sql for n, sql in SCRATCH.items()}
    assert {r["version"]: r["checksum"] for r in recorded} == {
        version: hashlib.sha256(sql.encode()).hexdigest() for version, sql in files.items()
    }
    # Applied one transaction each, in order: applied_at (transaction start) never goes back.
    assert [r["version"] for r in recorded] == _expected_versions()
    assert {"outbox", "inbox", "things", "schema_migrations"} <= tables
    assert [c["column_name"] for c in columns] == ["id", "name"]


async def test_applying_again_applies_nothing(endpoints: Endpoints, tmp_path: Path) -> None:
    url = await new_database(endpoints)
    migrations = db.load_migrations(_scopes(_scratch_dir(tmp_path)))
    async with pool_for(url) as pool, pool.acquire() as conn:
        first = await db.migrate(conn, migrations)
        before = await conn.fetch("SELECT version, applied_at FROM schema_migrations")
        again = await db.migrate(conn, migrations)
        after = await conn.fetch("SELECT version, applied_at FROM schema_migrations")
    assert first == _expected_versions()
    assert again == []
    assert sorted(before) == sorted(after)


async def test_a_changed_applied_file_raises_migration_error(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    url = await new_database(endpoints)
    scratch = _scratch_dir(tmp_path)
    conn = await asyncpg.connect(url)
    try:
        await db.migrate(conn, db.load_migrations(_scopes(scratch)))
        (scratch / "0002_things_name.sql").write_text(
            "ALTER TABLE things ADD COLUMN name varchar(10);", encoding="utf-8"
        )
        with pytest.raises(db.MigrationError, match="scratch:0002_things_name"):
            await db.migrate(conn, db.load_migrations(_scopes(scratch)))
        # The lock was released: another session can take it at once.
        other = await asyncpg.connect(url)
        try:
            assert await other.fetchval("SELECT pg_try_advisory_lock($1)", db._MIGRATION_LOCK)
        finally:
            await other.close()
    finally:
        await conn.close()


async def test_two_concurrent_migrate_calls_apply_each_migration_exactly_once(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    url = await new_database(endpoints)
    scratch = _scratch_dir(tmp_path)
    # Slow enough that the two calls really overlap, and not idempotent: a second
    # application of 0001 would fail (table exists), of 0003 would add a second row.
    (scratch / "0003_slow.sql").write_text(
        "SELECT pg_sleep(0.5); INSERT INTO things (id) VALUES (1);", encoding="utf-8"
    )
    migrations = db.load_migrations(_scopes(scratch))
    first, second = await asyncpg.connect(url), await asyncpg.connect(url)
    try:
        results = await asyncio.wait_for(
            asyncio.gather(db.migrate(first, migrations), db.migrate(second, migrations)), 30
        )
        counts = await first.fetch(
            "SELECT version, count(*) AS n FROM schema_migrations GROUP BY version"
        )
        things = await first.fetchval("SELECT count(*) FROM things")
    finally:
        await first.close()
        await second.close()
    versions = [m.version for m in migrations]
    assert sorted(results, key=len) == [[], versions]
    assert {r["version"]: r["n"] for r in counts} == dict.fromkeys(versions, 1)
    assert things == 1


async def test_pool_decodes_jsonb_and_pings(endpoints: Endpoints) -> None:
    url = await new_database(endpoints)
    async with pool_for(url) as pool:
        assert await db.ping(pool)
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT $1::jsonb", [["a", "b"]]) == [["a", "b"]]
