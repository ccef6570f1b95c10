"""Referral's SQL (tasks are in services.lib.tasks)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import asyncpg


@dataclass(frozen=True)
class Case:
    """What referral keeps of a case (a row of its `cases` table)."""

    case_id: str
    hospital_id: str
    referral_id: str
    person_id: str
    centre_id: str
    policy_year: int
    fee_support: str
    priority: str
    requested_services: tuple[str, ...]
    closed: bool


_CASE_COLUMNS = ", ".join(f.name for f in fields(Case))


async def add_case(conn: asyncpg.Connection, **case: Any) -> bool:
    case["requested_services"] = list(case["requested_services"])
    columns = ", ".join(case)
    params = ", ".join(f"${i}" for i in range(1, len(case) + 1))
    result: str = await conn.execute(
        f"INSERT INTO cases ({columns}) VALUES ({params}) ON CONFLICT (case_id) DO NOTHING",
        *case.values(),
    )
    return result.endswith(" 1")


async def lock_case(conn: asyncpg.Connection, case_id: str) -> Case | None:
    """The case, locked until the transaction ends: a case's lock comes before its
    tasks' (services.lib.tasks.operations explains the one lock order)."""
    row = await conn.fetchrow(
        f"SELECT {_CASE_COLUMNS} FROM cases WHERE case_id = $1 FOR UPDATE", case_id
    )
    if row is None:
        return None
    values = dict(row)
    values["requested_services"] = tuple(values["requested_services"])  # jsonb array
    return Case(**values)


async def get_case(conn: asyncpg.Connection, case_id: str) -> asyncpg.Record | None:
    """The case's row as a record, for the console's case view (the use cases use
    `lock_case`)."""
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
