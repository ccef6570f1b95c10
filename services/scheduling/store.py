"""Scheduling's SQL (visits are tasks, in services.lib.tasks)."""

from __future__ import annotations

from datetime import date
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


async def add_notes(conn: asyncpg.Connection, task_id: int, notes: str) -> None:
    await conn.execute(
        "INSERT INTO visit_notes (task_id, notes) VALUES ($1, $2)"
        " ON CONFLICT (task_id) DO UPDATE SET notes = EXCLUDED.notes",
        task_id,
        notes,
    )
