"""Referral's SQL."""

from __future__ import annotations

import json
from datetime import datetime
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
    await conn.execute(
        "UPDATE tasks SET status = 'cancelled' WHERE case_id = $1 AND status IN ('open', 'claimed')",
        case_id,
    )


async def add_task(
    conn: asyncpg.Connection,
    *,
    case_id: str,
    kind: str,
    centre_id: str,
    priority: str,
    due_at: datetime,
) -> int | None:
    task_id: int | None = await conn.fetchval(
        """INSERT INTO tasks (case_id, kind, centre_id, priority, due_at)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT (case_id, kind) DO NOTHING RETURNING id""",
        case_id,
        kind,
        centre_id,
        priority,
        due_at,
    )
    return task_id


async def complete_task(conn: asyncpg.Connection, task_id: int, result: dict[str, Any]) -> None:
    await conn.execute(
        "UPDATE tasks SET status = 'done', result = $2, completed_at = now() WHERE id = $1",
        task_id,
        json.loads(json.dumps(result, default=str)),
    )


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
