"""PostgreSQL: the connection pool and versioned SQL migrations.

Migrations are plain `.sql` files named `NNNN_what.sql`, applied in order at
start under an advisory lock, so two instances starting together do not race.
The runtime's own tables (outbox, inbox) come first, then the service's.
A file already applied whose text changed stops the service: editing history
would make databases disagree about their schema.

Each migration runs in one transaction and is recorded in it, unless its first line
is `-- carelink: no-transaction`: then it must hold exactly one statement, which runs
on its own (what `CREATE INDEX CONCURRENTLY` needs) and is recorded after it
succeeded. A crash between the two runs it again at the next start, so such a
statement must be safe to repeat: an index is created `IF NOT EXISTS` (the loader
refuses one that is not). A concurrent index build that failed midway (a crash, a
lock timeout, a duplicate key) leaves an INVALID index of that name behind, which
`IF NOT EXISTS` would keep for ever: the runner drops such a leftover
(`DROP INDEX CONCURRENTLY`) and builds it again.

Every statement waits at most `lock_timeout_s` for a lock (CARELINK_MIGRATION_LOCK_TIMEOUT_S):
an `ALTER TABLE` queued behind a long transaction would otherwise hold up every
query of that table queued behind it. The migration then fails naming itself; a
transactional one leaves nothing behind, and everything runs again at the next start.

The instance that waits for another one's migrations polls the advisory lock
instead of blocking on it: a session blocked in `pg_advisory_lock` holds a snapshot,
and `CREATE INDEX CONCURRENTLY` in the lock holder waits for every older snapshot
to end, which would be a deadlock.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
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
# How often an instance waiting for another one's migrations tries the lock again.
_LOCK_POLL_S = 0.2
DEFAULT_LOCK_TIMEOUT_S = 5.0
NO_TRANSACTION_MARKER = "-- carelink: no-transaction"
_MARKER = re.compile(r"--\s*carelink:\s*no-transaction\s*", re.IGNORECASE)
_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)
_IDENT = r'"(?:[^"]|"")+"|[A-Za-z_][\w$]*'
_CREATE_INDEX = re.compile(
    r"\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:CONCURRENTLY\s+)?(?P<if_not_exists>IF\s+NOT\s+EXISTS\s+)?"
    rf"(?P<name>{_IDENT})\s+ON\s+(?:ONLY\s+)?(?P<table>(?:{_IDENT})(?:\s*\.\s*(?:{_IDENT}))?)",
    re.IGNORECASE,
)
_ANY_CREATE_INDEX = re.compile(r"\s*CREATE\s+(?:UNIQUE\s+)?INDEX\b", re.IGNORECASE)


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: str  # "<scope>:<file stem>", e.g. "runtime:0001_outbox"
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def transactional(self) -> bool:
        """False when the file's first line is `-- carelink: no-transaction`."""
        lines = self.sql.lstrip("\ufeff").splitlines()
        return not (lines and _MARKER.fullmatch(lines[0].strip()))

    @property
    def statement(self) -> str:
        """The SQL without comments, blank ends or a final `;`."""
        return _COMMENTS.sub(" ", self.sql).strip().rstrip(";").strip()

    def index_built(self) -> tuple[str, str] | None:
        """(index name, table) when the migration is a CREATE INDEX, else None."""
        match = _CREATE_INDEX.match(self.statement)
        if match is None:
            return None
        return _unquote(match.group("name")), match.group("table")

    def check(self) -> None:
        """Refuse a no-transaction migration that could not run on its own or again."""
        if self.transactional:
            return
        statement = self.statement
        if not statement:
            raise MigrationError(
                f"migration {self.version} runs outside a transaction but is empty"
            )
        # A `;` inside a string literal would be refused too: no DDL needs one.
        if ";" in statement:
            raise MigrationError(
                f"migration {self.version} runs outside a transaction and so must hold exactly "
                "one statement: put each statement in a file of its own"
            )
        match = _CREATE_INDEX.match(statement)
        if _ANY_CREATE_INDEX.match(statement) and (
            match is None or not match.group("if_not_exists")
        ):
            raise MigrationError(
                f"migration {self.version} runs outside a transaction, so it runs again when "
                "the service stopped after the index was built but before it was recorded: "
                "write CREATE INDEX CONCURRENTLY IF NOT EXISTS <name> ON <table>"
            )


def _unquote(identifier: str) -> str:
    if identifier.startswith('"'):
        return identifier[1:-1].replace('""', '"')
    return identifier.lower()  # unquoted identifiers are folded to lower case


def load_migrations(scopes: Sequence[tuple[str, Path]]) -> list[Migration]:
    migrations: list[Migration] = []
    for scope, directory in scopes:
        for path in sorted(directory.glob("*.sql")):
            migration = Migration(f"{scope}:{path.stem}", path.read_text(encoding="utf-8"))
            migration.check()
            migrations.append(migration)
    return migrations


async def _take_migration_lock(conn: asyncpg.Connection) -> None:
    """Wait for the migration lock without holding a snapshot while waiting (see above)."""
    waiting = False
    while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _MIGRATION_LOCK):
        if not waiting:
            log.info("another instance is migrating this database, waiting for it")
            waiting = True
        await asyncio.sleep(_LOCK_POLL_S)


async def migrate(
    conn: asyncpg.Connection,
    migrations: Sequence[Migration],
    *,
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
) -> list[str]:
    """Apply what is missing; returns the versions applied now."""
    for migration in migrations:
        migration.check()
    await _take_migration_lock(conn)
    previous_timeout = await conn.fetchval("SELECT current_setting('lock_timeout')")
    await conn.execute(
        "SELECT set_config('lock_timeout', $1, false)", f"{max(1, round(lock_timeout_s * 1000))}ms"
    )
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
            try:
                if migration.transactional:
                    async with conn.transaction():
                        await conn.execute(migration.sql)
                        await _record(conn, migration)
                else:
                    await _drop_invalid_leftover(conn, migration)
                    await conn.execute(migration.sql)
                    await _record(conn, migration)
            except asyncpg.LockNotAvailableError as exc:
                raise MigrationError(_lock_timeout_message(migration, lock_timeout_s)) from exc
            log.info(
                "migration applied", version=migration.version, transaction=migration.transactional
            )
            done.append(migration.version)
        return done
    finally:
        await conn.execute("SELECT set_config('lock_timeout', $1, false)", previous_timeout)
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)


async def _record(conn: asyncpg.Connection, migration: Migration) -> None:
    await conn.execute(
        "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)",
        migration.version,
        migration.checksum,
    )


async def _drop_invalid_leftover(conn: asyncpg.Connection, migration: Migration) -> None:
    """Drop the INVALID index a failed concurrent build of this migration left behind.

    Only this migration's own index, and only while holding the migration lock: no other
    runner can be building it now (the session of a runner that died mid-build keeps the
    lock until its build ends)."""
    built = migration.index_built()
    if built is None:
        return
    name, table = built
    leftover = await conn.fetchval(
        """SELECT format('%I.%I', n.nspname, c.relname)
           FROM pg_index i
           JOIN pg_class c ON c.oid = i.indexrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relname = $1 AND i.indrelid = to_regclass($2) AND NOT i.indisvalid""",
        name,
        table,
    )
    if leftover is None:
        return
    log.warning(
        "dropping an invalid index left by a failed concurrent build, building it again",
        version=migration.version,
        index=leftover,
    )
    await conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {leftover}")


def _lock_timeout_message(migration: Migration, lock_timeout_s: float) -> str:
    left = (
        "nothing of it was applied"
        if migration.transactional
        else "an index it left half-built is dropped and built again then"
    )
    return (
        f"migration {migration.version} waited more than {lock_timeout_s:g} s for a lock "
        f"(a table it changes is busy: a long transaction, or another migration holds it); "
        f"{left}. It runs again at the next start; look for long-running sessions in "
        "pg_stat_activity, or raise CARELINK_MIGRATION_LOCK_TIMEOUT_S"
    )


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
