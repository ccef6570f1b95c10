"""Scheduling's SQL (visits are tasks, in services.lib.tasks)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
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


async def add_cases(conn: asyncpg.Connection, cases: Sequence[Case]) -> set[str]:
    """Add the cases not stored yet, in one statement; the ids of those it added.

    A case id twice in `cases`: the first is kept, as adding them one by one would.
    Rows go in in case-id order, so two transactions adding overlapping sets take
    the primary key's locks in the same order and wait for each other instead of
    deadlocking. Only the facts of an accepted case are written; the rest of the
    row starts at its defaults."""
    first: dict[str, Case] = {}
    for case in cases:
        first.setdefault(case.case_id, case)
    rows = sorted(first.values(), key=lambda c: c.case_id)
    if not rows:
        return set()
    added = await conn.fetch(
        """INSERT INTO cases (case_id, hospital_id, referral_id, centre_id, priority,
                              expected_discharge_date, policy_year)
           SELECT case_id, hospital_id, referral_id, centre_id, priority,
                  expected_discharge_date, policy_year
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::date[],
                       $7::int[])
                WITH ORDINALITY AS n (case_id, hospital_id, referral_id, centre_id, priority,
                                      expected_discharge_date, policy_year, ord)
           ORDER BY ord
           ON CONFLICT (case_id) DO NOTHING
           RETURNING case_id""",
        [c.case_id for c in rows],
        [c.hospital_id for c in rows],
        [c.referral_id for c in rows],
        [c.centre_id for c in rows],
        [c.priority for c in rows],
        [c.expected_discharge_date for c in rows],
        [c.policy_year for c in rows],
    )
    return {row["case_id"] for row in added}


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
