"""Scheduling's SQL (visits are tasks, in services.lib.tasks)."""

from __future__ import annotations

from dataclasses import fields
from datetime import date
from typing import Any

import asyncpg

from services.scheduling.domain import Case

_CASE_COLUMNS = ", ".join(f.name for f in fields(Case))
# What the use cases change; the ids, centre, priority and policy year are set once on
# acceptance.
_MUTABLE = (
    "expected_discharge_date",
    "reviewed",
    "discharged_at",
    "services_linked",
    "hold_reason",
    "closed",
)


async def add_case(
    conn: asyncpg.Connection,
    *,
    case_id: str,
    hospital_id: str,
    referral_id: str,
    centre_id: str,
    priority: str,
    expected_discharge_date: date,
    policy_year: int | None = None,
) -> bool:
    result: str = await conn.execute(
        """INSERT INTO cases (case_id, hospital_id, referral_id, centre_id, priority,
                              expected_discharge_date, policy_year)
           VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (case_id) DO NOTHING""",
        case_id,
        hospital_id,
        referral_id,
        centre_id,
        priority,
        expected_discharge_date,
        policy_year,
    )
    return result.endswith(" 1")


async def lock_case(conn: asyncpg.Connection, case_id: str) -> Case | None:
    """The case, locked until the transaction ends: a case's lock comes before its
    tasks' (services.lib.tasks.operations explains the one lock order)."""
    row = await conn.fetchrow(
        f"SELECT {_CASE_COLUMNS} FROM cases WHERE case_id = $1 FOR UPDATE", case_id
    )
    return Case(**dict(row)) if row is not None else None


async def save_case(conn: asyncpg.Connection, case: Case) -> None:
    columns = ", ".join(f"{name} = ${i}" for i, name in enumerate(_MUTABLE, start=2))
    await conn.execute(
        f"UPDATE cases SET {columns} WHERE case_id = $1",
        case.case_id,
        *(getattr(case, name) for name in _MUTABLE),
    )


async def get_case(conn: asyncpg.Connection, case_id: str) -> asyncpg.Record | None:
    """The case's row as a record, for the console's case view (the use cases use
    `lock_case`)."""
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT * FROM cases WHERE case_id = $1 FOR UPDATE", case_id
    )
    return row


async def reopens_of(conn: asyncpg.Connection, case_id: str) -> list[dict[str, Any]]:
    """The case's visits reopened by a coordinator (task_audit): which task, who, when,
    the hold's reason and the note, oldest first."""
    rows = await conn.fetch(
        """SELECT a.task_id, t.kind, a.reason_code, a.note, a.actor, a.at
             FROM task_audit a JOIN tasks t ON t.id = a.task_id
            WHERE t.case_id = $1 AND a.action = 'reopen'
            ORDER BY a.at, a.id""",
        case_id,
    )
    return [dict(row) for row in rows]


async def centre_of(conn: asyncpg.Connection, case_id: str) -> str | None:
    """The case's centre, without a lock (a read for the API); None: no such case."""
    centre: str | None = await conn.fetchval(
        "SELECT centre_id FROM cases WHERE case_id = $1", case_id
    )
    return centre


async def delete_visit_notes(conn: asyncpg.Connection, case_id: str) -> int:
    """Deletes the visit notes of the case's tasks; returns how many were deleted."""
    status: str = await conn.execute(
        "DELETE FROM visit_notes WHERE task_id IN (SELECT id FROM tasks WHERE case_id = $1)",
        case_id,
    )
    return int(status.rsplit(" ", 1)[-1])


async def add_notes(conn: asyncpg.Connection, task_id: int, notes: str) -> None:
    await conn.execute(
        "INSERT INTO visit_notes (task_id, notes) VALUES ($1, $2)"
        " ON CONFLICT (task_id) DO UPDATE SET notes = EXCLUDED.notes",
        task_id,
        notes,
    )
