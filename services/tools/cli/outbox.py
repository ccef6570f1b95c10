"""Outbox backlog: rows each service has committed but its relay has not yet published;
rows the relay set aside, and putting them back in the queue."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import asyncpg

from services.lib.runtime.outbox import NOTIFY_CHANNEL
from services.tools.cli.connect import System
from services.tools.stack.deployables import SERVICES

BACKLOG_SQL = """SELECT count(*) FILTER (WHERE failed_at IS NULL) AS unpublished,
                        count(*) FILTER (WHERE failed_at IS NOT NULL) AS set_aside,
                        extract(epoch FROM now() - min(created_at) FILTER (WHERE failed_at IS NULL))::float8
                            AS oldest_age_s
                   FROM outbox WHERE published_at IS NULL"""


async def service_backlog(service: str, url: str, *, timeout: float) -> dict[str, Any]:
    row: dict[str, Any] = {
        "service": service,
        "unpublished": None,
        "oldest_age_s": None,
        # Rows the broker refused for good (e.g. too large): kept with their reason.
        "set_aside": None,
        "error": None,
    }
    try:
        conn = await asyncpg.connect(url, timeout=timeout)
    except Exception as exc:  # any failure is this service's row, not the command's end
        row["error"] = f"cannot connect: {type(exc).__name__}: {exc}"
        return row
    try:
        record = await asyncio.wait_for(conn.fetchrow(BACKLOG_SQL), timeout)
        row["unpublished"] = int(record["unpublished"])
        row["set_aside"] = int(record["set_aside"])
        age = record["oldest_age_s"]
        row["oldest_age_s"] = None if age is None else round(float(age), 1)
    except Exception as exc:
        row["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        await conn.close(timeout=timeout)
    return row


async def backlogs(
    system: System, *, services: Sequence[str] = SERVICES, timeout: float = 10.0
) -> list[dict[str, Any]]:
    async def one(service: str) -> dict[str, Any]:
        url = system.databases.get(service)
        if not url:
            return {
                "service": service,
                "unpublished": None,
                "oldest_age_s": None,
                "error": f"no database URL (set CARELINK_{service.upper()}_DATABASE_URL)",
            }
        return await service_backlog(service, url, timeout=timeout)

    return list(await asyncio.gather(*(one(s) for s in services)))


# Set-aside rows -----------------------------------------------------------------------
#
# The relay sets a row aside (failed_at, error) when the broker refuses it for good: too
# large, a topic that does not exist, no permission. Nothing retries it by itself. Once
# the cause is fixed, `carelink outbox requeue` clears failed_at: the row is unpublished
# again and the relay (woken by NOTIFY) publishes it next, lowest id first. The value is
# never read or printed: outbox rows carry events, and a dead letter's value is a
# hospital's original record, with personal data.

SET_ASIDE_SQL = """SELECT id, topic, octet_length(value) AS size, created_at, failed_at, error
                     FROM outbox
                    WHERE published_at IS NULL AND failed_at IS NOT NULL
                      AND ($1::bigint[] IS NULL OR id = ANY($1::bigint[]))
                    ORDER BY id"""

REQUEUE_SQL = """UPDATE outbox SET failed_at = NULL
                  WHERE published_at IS NULL AND failed_at IS NOT NULL
                    AND ($1::bigint[] IS NULL OR id = ANY($1::bigint[]))
              RETURNING id"""

# Sent in the requeue's transaction so an active relay wakes at commit, not at its next poll.
NOTIFY_SQL = f"SELECT pg_notify('{NOTIFY_CHANNEL}', '')"


def _set_aside_row(service: str, record: asyncpg.Record) -> dict[str, Any]:
    return {
        "service": service,
        "id": int(record["id"]),
        "topic": record["topic"],
        "size": int(record["size"]),
        "created_at": record["created_at"].isoformat(),
        "set_aside_at": record["failed_at"].isoformat(),
        "error": record["error"],
    }


async def set_aside_rows(
    url: str, service: str, *, ids: Sequence[int] | None = None, timeout: float = 10.0
) -> list[dict[str, Any]]:
    """The service's set-aside rows (only those among `ids` when given), oldest first."""
    conn = await asyncpg.connect(url, timeout=timeout)
    try:
        records = await conn.fetch(SET_ASIDE_SQL, list(ids) if ids else None, timeout=timeout)
    finally:
        await conn.close(timeout=timeout)
    return [_set_aside_row(service, r) for r in records]


async def requeue(
    url: str,
    service: str,
    *,
    ids: Sequence[int] | None,
    dry_run: bool = False,
    timeout: float = 10.0,
) -> list[dict[str, Any]]:
    """Put set-aside rows back in the queue: every one (`ids` None) or those among `ids`.

    Returns one entry per row asked for: `requeued` (or `would requeue` with dry_run),
    or, for an id given that is not set aside, `not set aside` (published, still
    waiting, or no such row). Rows are locked while they are requeued, so two operators
    running it at once requeue each row once.
    """
    wanted = sorted(set(ids)) if ids else None
    conn = await asyncpg.connect(url, timeout=timeout)
    try:
        async with conn.transaction():
            records = await conn.fetch(SET_ASIDE_SQL + " FOR UPDATE", wanted, timeout=timeout)
            rows = [_set_aside_row(service, r) for r in records]
            if rows and not dry_run:
                requeued = {
                    int(r["id"])
                    for r in await conn.fetch(
                        REQUEUE_SQL, [row["id"] for row in rows], timeout=timeout
                    )
                }
                await conn.execute(NOTIFY_SQL, timeout=timeout)
            else:
                requeued = set()
    finally:
        await conn.close(timeout=timeout)
    for row in rows:
        if dry_run:
            row["action"] = "would requeue"
        else:
            row["action"] = "requeued" if row["id"] in requeued else "not set aside"
    found = {row["id"] for row in rows}
    missing = [
        {"service": service, "id": row_id, "action": "not set aside"}
        for row_id in wanted or []
        if row_id not in found
    ]
    return sorted([*rows, *missing], key=lambda r: int(r["id"]))
