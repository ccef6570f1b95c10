"""Scheduling's SQL."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import asyncpg


async def add_case(
    conn: asyncpg.Connection,
    *,
    case_id: str,
    hospital_id: str,
    referral_id: str,
    centre_id: str,
    priority: str,
    expected_discharge_date: date,
) -> bool:
    result: str = await conn.execute(
        """INSERT INTO cases (case_id, hospital_id, referral_id, centre_id, priority,
                              expected_discharge_date)
           VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (case_id) DO NOTHING""",
        case_id,
        hospital_id,
        referral_id,
        centre_id,
        priority,
        expected_discharge_date,
    )
    return result.endswith(" 1")


async def get_case(conn: asyncpg.Connection, case_id: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT * FROM cases WHERE case_id = $1 FOR UPDATE", case_id
    )
    return row


async def set_case(conn: asyncpg.Connection, case_id: str, **fields: Any) -> None:
    columns = ", ".join(f"{name} = ${i}" for i, name in enumerate(fields, start=2))
    await conn.execute(f"UPDATE cases SET {columns} WHERE case_id = $1", case_id, *fields.values())


async def add_visit(
    conn: asyncpg.Connection, case_id: str, kind: str, start: datetime, end: datetime
) -> int | None:
    visit_id: int | None = await conn.fetchval(
        """INSERT INTO visits (case_id, kind, window_start, window_end) VALUES ($1, $2, $3, $4)
           ON CONFLICT (case_id, kind) DO NOTHING RETURNING id""",
        case_id,
        kind,
        start,
        end,
    )
    return visit_id


async def complete_visit(conn: asyncpg.Connection, visit_id: int, result: dict[str, Any]) -> None:
    await conn.execute(
        "UPDATE visits SET status = 'done', result = $2, completed_at = now() WHERE id = $1",
        visit_id,
        result,
    )


async def cancel_open_visits(conn: asyncpg.Connection, case_id: str) -> None:
    await conn.execute(
        "UPDATE visits SET status = 'cancelled' WHERE case_id = $1 AND status = 'open'", case_id
    )
