"""Per-service databases on a server we hold a superuser URL for."""

from __future__ import annotations

import asyncio
import re
from urllib.parse import urlsplit, urlunsplit

# Plain identifiers only: the name goes into CREATE DATABASE and into a URL path.
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def database_url(admin_url: str, name: str) -> str:
    """admin_url with its database replaced by name (credentials and query kept)."""
    parts = urlsplit(admin_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def ensure_databases(admin_url: str, names: list[str]) -> dict[str, str]:
    """CREATE DATABASE for each missing name; returns name -> URL. Safe to race."""
    import asyncpg

    for name in names:
        if not _NAME.match(name):
            raise ValueError(f"database name {name!r} is not a plain identifier")
    conn = await asyncpg.connect(admin_url, timeout=10)
    try:
        for name in names:
            if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                continue
            for attempt in range(20):
                try:
                    await conn.execute(f'CREATE DATABASE "{name}"')
                except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
                    # Another session created it between our check and our CREATE; the
                    # loser of an exact tie sees the catalog's unique index instead.
                    break
                except asyncpg.ObjectInUseError:
                    # CREATE DATABASE copies template1 and refuses while anyone else is
                    # connected to it (e.g. a concurrent CREATE on some servers).
                    if attempt == 19:
                        raise
                    await asyncio.sleep(0.1)
                else:
                    break
    finally:
        await conn.close()
    return {name: database_url(admin_url, name) for name in names}
