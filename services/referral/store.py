"""Referral's SQL (tasks are in services.lib.tasks)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import astuple, dataclass, fields
from datetime import date
from typing import Any

import asyncpg

from services.referral.domain import Line


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
    # Null for cases accepted before these were kept (issue 9).
    district: str | None = None
    expected_discharge_date: date | None = None


_CASE_COLUMNS = ", ".join(f.name for f in fields(Case))


async def add_cases(conn: asyncpg.Connection, cases: Sequence[Case]) -> set[str]:
    """Add the cases not stored yet, in one statement; the ids of those it added.

    A case id twice in `cases`: the first is kept, as adding them one by one would.
    Rows go in in case-id order, so two transactions adding overlapping sets take
    the primary key's locks in the same order and wait for each other instead of
    deadlocking."""
    first: dict[str, Case] = {}
    for case in cases:
        first.setdefault(case.case_id, case)
    rows = sorted(first.values(), key=lambda c: c.case_id)
    if not rows:
        return set()
    added = await conn.fetch(
        """INSERT INTO cases (case_id, hospital_id, referral_id, person_id, centre_id,
                              policy_year, fee_support, priority, requested_services,
                              district, expected_discharge_date, closed)
           SELECT case_id, hospital_id, referral_id, person_id, centre_id, policy_year,
                  fee_support, priority, requested_services::jsonb, district,
                  expected_discharge_date, closed
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[],
                       $7::text[], $8::text[], $9::text[], $10::text[], $11::date[],
                       $12::boolean[])
                WITH ORDINALITY AS n (case_id, hospital_id, referral_id, person_id, centre_id,
                                      policy_year, fee_support, priority, requested_services,
                                      district, expected_discharge_date, closed, ord)
           ORDER BY ord
           ON CONFLICT (case_id) DO NOTHING
           RETURNING case_id""",
        [c.case_id for c in rows],
        [c.hospital_id for c in rows],
        [c.referral_id for c in rows],
        [c.person_id for c in rows],
        [c.centre_id for c in rows],
        [c.policy_year for c in rows],
        [c.fee_support for c in rows],
        [c.priority for c in rows],
        # jsonb as its text: one encoding whatever codec the connection has.
        [json.dumps(list(c.requested_services)) for c in rows],
        [c.district for c in rows],
        [c.expected_discharge_date for c in rows],
        [c.closed for c in rows],
    )
    return {row["case_id"] for row in added}


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


async def set_expected_discharge(conn: asyncpg.Connection, case_id: str, expected: date) -> None:
    await conn.execute(
        "UPDATE cases SET expected_discharge_date = $2 WHERE case_id = $1", case_id, expected
    )


async def close_case(conn: asyncpg.Connection, case_id: str) -> None:
    await conn.execute("UPDATE cases SET closed = true WHERE case_id = $1", case_id)


async def used_this_year(
    conn: asyncpg.Connection,
    person_id: str,
    policy_year: int,
    *,
    except_line: tuple[str, int] | None = None,
) -> int:
    """What this person's annual cap holds in this policy year, all cases: the district's
    part of what was delivered on every ended line, the planned part of every open line
    (a plan never promises more than the cap), and plans set before lines were kept.
    `except_line` (case id, line number) leaves one line out: the one being priced."""
    case_id, line_no = except_line or ("", 0)
    used: int = await conn.fetchval(
        """SELECT coalesce((SELECT sum(CASE status WHEN 'ended' THEN coalesce(district_paid_krw, 0)
                                                    WHEN 'cancelled' THEN 0
                                                    ELSE planned_district_krw END)
                              FROM plan_lines
                             WHERE person_id = $1 AND policy_year = $2
                               AND NOT (case_id = $3 AND line_no = $4)), 0)
                + coalesce((SELECT sum(p.publicly_paid_krw) FROM plans p
                             WHERE p.person_id = $1 AND p.policy_year = $2
                               AND NOT EXISTS (SELECT 1 FROM plan_lines l
                                                WHERE l.case_id = p.case_id)), 0)""",
        person_id,
        policy_year,
        case_id,
        line_no,
    )
    return used


async def add_plan(conn: asyncpg.Connection, **plan: Any) -> None:
    columns = ", ".join(plan)
    params = ", ".join(f"${i}" for i in range(1, len(plan) + 1))
    await conn.execute(f"INSERT INTO plans ({columns}) VALUES ({params})", *plan.values())


# ------------------------------------------------------------------ plan lines

_LINE_COLUMNS = ", ".join(f.name for f in fields(Line))


def _line(row: asyncpg.Record) -> Line:
    return Line(**dict(row))


async def add_lines(
    conn: asyncpg.Connection, lines: Sequence[Line], *, person_id: str, policy_year: int
) -> list[Line]:
    """Write a plan's lines (ordered); the ids come back from the database."""
    names = [f.name for f in fields(Line) if f.name != "id"]
    columns = ", ".join([*names, "person_id", "policy_year"])
    params = ", ".join(f"${i}" for i in range(1, len(names) + 3))
    stored = []
    for line in lines:
        values = astuple(line)[1:]
        row = await conn.fetchrow(
            f"INSERT INTO plan_lines ({columns}) VALUES ({params}) RETURNING {_LINE_COLUMNS}",
            *values,
            person_id,
            policy_year,
        )
        stored.append(_line(row))
    return stored


async def lock_lines(conn: asyncpg.Connection, case_id: str) -> list[Line]:
    """The case's lines in order, locked (after the case: the one lock order)."""
    rows = await conn.fetch(
        f"SELECT {_LINE_COLUMNS} FROM plan_lines WHERE case_id = $1 ORDER BY line_no FOR UPDATE",
        case_id,
    )
    return [_line(r) for r in rows]


async def lines_of(conn: asyncpg.Connection, case_id: str) -> list[Line]:
    rows = await conn.fetch(
        f"SELECT {_LINE_COLUMNS} FROM plan_lines WHERE case_id = $1 ORDER BY line_no", case_id
    )
    return [_line(r) for r in rows]


async def save_line(conn: asyncpg.Connection, line: Line, reported_by: str) -> None:
    await conn.execute(
        """UPDATE plan_lines SET status = $3, started_on = $4, ended_on = $5,
                  delivered_units = $6, end_reason = $7, cost_krw = $8,
                  district_paid_krw = $9, self_paid_krw = $10, reported_by = $11,
                  updated_at = now()
            WHERE case_id = $1 AND line_no = $2""",
        line.case_id,
        line.line_no,
        line.status,
        line.started_on,
        line.ended_on,
        line.delivered_units,
        line.end_reason,
        line.cost_krw,
        line.district_paid_krw,
        line.self_paid_krw,
        reported_by,
    )


async def cancel_open_lines(conn: asyncpg.Connection, case_id: str) -> int:
    """The case ended before its lines did (cancelled, failed): what is still open is
    cancelled and holds nothing of the cap any more."""
    result: str = await conn.execute(
        """UPDATE plan_lines SET status = 'cancelled', reported_by = 'system', updated_at = now()
            WHERE case_id = $1 AND status IN ('ordered', 'started')""",
        case_id,
    )
    return int(result.split()[-1])


async def line_by_id(conn: asyncpg.Connection, line_id: int) -> Line | None:
    """A line by its public id, unlocked (the caller locks its case, then its lines)."""
    row = await conn.fetchrow(f"SELECT {_LINE_COLUMNS} FROM plan_lines WHERE id = $1", line_id)
    return _line(row) if row is not None else None


async def provider_lines(
    conn: asyncpg.Connection, provider_id: str, *, statuses: Sequence[str], limit: int
) -> list[Line]:
    rows = await conn.fetch(
        f"""SELECT {_LINE_COLUMNS} FROM plan_lines
             WHERE provider_id = $1 AND status = ANY($2::text[])
             ORDER BY planned_start, id LIMIT $3""",
        provider_id,
        list(statuses),
        limit,
    )
    return [_line(r) for r in rows]


async def has_plan(conn: asyncpg.Connection, case_id: str) -> bool:
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM plans WHERE case_id = $1)", case_id
    )
    return found


async def correct_fee_support(
    conn: asyncpg.Connection,
    case_id: str,
    *,
    previous: str,
    fee_support: str,
    note: str,
    actor: str,
) -> None:
    """Set the case's fee support and record who corrected it, from what, and why."""
    await conn.execute("UPDATE cases SET fee_support = $2 WHERE case_id = $1", case_id, fee_support)
    await conn.execute(
        """INSERT INTO fee_corrections (case_id, previous, fee_support, note, actor)
           VALUES ($1, $2, $3, $4, $5)""",
        case_id,
        previous,
        fee_support,
        note,
        actor,
    )


async def forget_fee_correction_notes(conn: asyncpg.Connection, case_id: str) -> int:
    """Empties the notes of the case's fee-support corrections (PIPA destruction); the
    correction itself (from, to, who, when) stays."""
    status: str = await conn.execute(
        "UPDATE fee_corrections SET note = '' WHERE case_id = $1 AND note <> ''", case_id
    )
    return int(status.rsplit(" ", 1)[-1])


async def fee_corrections_of(conn: asyncpg.Connection, case_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT previous, fee_support, note, actor, at FROM fee_corrections
           WHERE case_id = $1 ORDER BY at, id""",
        case_id,
    )
    return [dict(row) for row in rows]
