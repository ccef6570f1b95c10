"""Referral's SQL (tasks are in services.lib.tasks)."""

from __future__ import annotations

from typing import Any

import asyncpg


async def add_case(conn: asyncpg.Connection, **case: Any) -> bool:
    case["requested_services"] = list(case["requested_services"])
    columns = ", ".join(case)
    params = ", ".join(f"${i}" for i in range(1, len(case) + 1))
    result: str = await conn.execute(
        f"INSERT INTO cases ({columns}) VALUES ({params}) ON CONFLICT (case_id) DO NOTHING",
        *case.values(),
    )
    return result.endswith(" 1")


async def get_case(conn: asyncpg.Connection, case_id: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT * FROM cases WHERE case_id = $1 FOR UPDATE", case_id
    )
    return row


async def close_case(conn: asyncpg.Connection, case_id: str) -> None:
    await conn.execute("UPDATE cases SET closed = true WHERE case_id = $1", case_id)


async def used_this_year(conn: asyncpg.Connection, person_id: str, policy_year: int) -> int:
    """What the district already pays for this person in this policy year, all cases."""
    used: int = await conn.fetchval(
        "SELECT coalesce(sum(publicly_paid_krw), 0) FROM plans"
        " WHERE person_id = $1 AND policy_year = $2",
        person_id,
        policy_year,
    )
    return used


async def add_plan(conn: asyncpg.Connection, **plan: Any) -> None:
    columns = ", ".join(plan)
    params = ", ".join(f"${i}" for i in range(1, len(plan) + 1))
    await conn.execute(f"INSERT INTO plans ({columns}) VALUES ({params})", *plan.values())
