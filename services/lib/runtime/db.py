"""PostgreSQL: the connection pool and versioned SQL migrations.

Migrations are plain `.sql` files named `NNNN_what.sql`, applied in order at
start under an advisory lock, so two instances starting together do not race.
The runtime's own tables (outbox, inbox) come first, then the service's.
A file already applied whose text changed stops the service: editing history
would make databases disagree about their schema.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from services.lib.runtime.logging import get_logger

log = get_logger(__name__)

RUNTIME_MIGRATIONS = Path(__file__).with_name("migrations")
# Any constant works; it only has to be the same for every instance of every service.
_MIGRATION_LOCK = 0x6361_7265  # "care"


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: str  # "<scope>:<file stem>", e.g. "runtime:0001_outbox"
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(scopes: Sequence[tuple[str, Path]]) -> list[Migration]:
    migrations: list[Migration] = []
    for scope, directory in scopes:
        for path in sorted(directory.glob("*.sql")):
            migrations.append(Migration(f"{scope}:{path.stem}", path.read_text(encoding="utf-8")))
    return migrations


async def migrate(conn: asyncpg.Connection, migrations: Sequence[Migration]) -> list[str]:
    """Apply what is missing; returns the versions applied now."""
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version text PRIMARY KEY,
                   checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        applied = {
            r["version"]: r["checksum"]
            for r in await conn.fetch("SELECT version, checksum FROM schema_migrations")
        }
        done: list[str] = []
        for migration in migrations:
            known = applied.get(migration.version)
            if known is not None:
                if known != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version} was changed after it was applied; "
                        "add a new migration instead of editing an applied one"
                    )
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)",
                    migration.version,
                    migration.checksum,
                )
            log.info("migration applied", version=migration.version)
            done.append(migration.version)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)


async def init_connection(conn: asyncpg.Connection) -> None:
    # jsonb columns come back as Python objects, not strings.
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    pool: asyncpg.Pool = await asyncpg.create_pool(
        url, min_size=min_size, max_size=max_size, init=init_connection, command_timeout=30
    )
    return pool


async def ping(pool: asyncpg.Pool) -> bool:
    try:
        async with pool.acquire(timeout=2) as conn:
            value: Any = await conn.fetchval("SELECT 1")
            return bool(value == 1)
    except Exception:
        return False
