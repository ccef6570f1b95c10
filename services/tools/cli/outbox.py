"""Outbox backlog: rows each service has committed but its relay has not yet published."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import asyncpg

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
