"""Intake's SQL: the only place that reads or writes its tables."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from services.intake.domain import CaseToEnd, StoredReferral


@dataclass(frozen=True)
class StoredSubmission:
    """A referral's case and the submission as the hospital sent it (personal data;
    None for a refused referral, which keeps none)."""

    case_id: str
    submission: dict[str, Any] | None


async def find(
    conn: asyncpg.Connection, hospital_id: str, referral_id: str
) -> StoredReferral | None:
    row = await conn.fetchrow(
        """SELECT r.case_id, r.content_hash, r.outcome, c.open, c.discharged
           FROM referrals r JOIN cases c USING (case_id)
           WHERE r.hospital_id = $1 AND r.referral_id = $2
           FOR UPDATE OF c""",
        hospital_id,
        referral_id,
    )
    return StoredReferral(**dict(row)) if row else None


async def person_for(conn: asyncpg.Connection, patient_key: str, new_id: str) -> str:
    """The person id for this patient key, allocating `new_id` on first sight.

    The upsert locks the person's row until the transaction ends, so two
    referrals of one person handled at once are serialised here.
    """
    person_id: str = await conn.fetchval(
        """INSERT INTO persons (patient_key, person_id) VALUES ($1, $2)
           ON CONFLICT (patient_key) DO UPDATE SET patient_key = EXCLUDED.patient_key
           RETURNING person_id""",
        patient_key,
        new_id,
    )
    return person_id


async def open_case_of(conn: asyncpg.Connection, person_id: str) -> str | None:
    case_id: str | None = await conn.fetchval(
        "SELECT case_id FROM cases WHERE person_id = $1 AND open ORDER BY created_at LIMIT 1",
        person_id,
    )
    return case_id


async def add_case(
    conn: asyncpg.Connection, case_id: str, *, person_id: str | None, open: bool
) -> None:
    await conn.execute(
        "INSERT INTO cases (case_id, person_id, open) VALUES ($1, $2, $3)", case_id, person_id, open
    )


async def add_referral(
    conn: asyncpg.Connection,
    *,
    hospital_id: str,
    referral_id: str,
    case_id: str,
    content_hash: str | None,
    outcome: str,
    submission: dict[str, Any] | None,
) -> None:
    await conn.execute(
        """INSERT INTO referrals (hospital_id, referral_id, case_id, content_hash, outcome,
                                  submission)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        hospital_id,
        referral_id,
        case_id,
        content_hash,
        outcome,
        submission,
    )


async def add_event(
    conn: asyncpg.Connection, case_id: str, ce_type: str, data: dict[str, Any]
) -> None:
    await conn.execute(
        "INSERT INTO referral_events (case_id, ce_type, data) VALUES ($1, $2, $3)",
        case_id,
        ce_type,
        json.loads(json.dumps(data, default=str)),
    )


async def set_case(conn: asyncpg.Connection, case_id: str, **fields: Any) -> None:
    columns = ", ".join(f"{name} = ${i}" for i, name in enumerate(fields, start=2))
    await conn.execute(f"UPDATE cases SET {columns} WHERE case_id = $1", case_id, *fields.values())


async def submission_of(
    conn: asyncpg.Connection, hospital_id: str, referral_id: str
) -> StoredSubmission | None:
    """The referral's case and submission, locked until the transaction ends."""
    row = await conn.fetchrow(
        "SELECT case_id, submission FROM referrals WHERE hospital_id = $1 AND referral_id = $2"
        " FOR UPDATE",
        hospital_id,
        referral_id,
    )
    if row is None:
        return None
    return StoredSubmission(row["case_id"], row["submission"])


async def move_referral(
    conn: asyncpg.Connection, hospital_id: str, referral_id: str, case_id: str, *, outcome: str
) -> None:
    await conn.execute(
        "UPDATE referrals SET case_id = $3, outcome = $4 WHERE hospital_id = $1 AND referral_id = $2",
        hospital_id,
        referral_id,
        case_id,
        outcome,
    )


async def case_to_end(conn: asyncpg.Connection, case_id: str) -> CaseToEnd | None:
    """The case with the referral that opened it, the case row locked until the
    transaction ends (the lock every change of the case takes first)."""
    row = await conn.fetchrow(
        """SELECT c.case_id, c.open, c.discharged, r.hospital_id, r.referral_id
           FROM cases c JOIN referrals r USING (case_id)
           WHERE c.case_id = $1 AND r.outcome = 'accepted'
           ORDER BY r.received_at LIMIT 1
           FOR UPDATE OF c""",
        case_id,
    )
    return CaseToEnd(**dict(row)) if row else None


async def add_exit(
    conn: asyncpg.Connection,
    case_id: str,
    *,
    action: str,
    reason_code: str,
    note: str | None,
    actor: str,
    centre_id: str,
) -> None:
    await conn.execute(
        """INSERT INTO case_exits (case_id, action, reason_code, note, actor, centre_id)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        case_id,
        action,
        reason_code,
        note,
        actor,
        centre_id,
    )


async def exits_of(conn: asyncpg.Connection, case_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT action, reason_code, note, actor, at FROM case_exits
           WHERE case_id = $1 ORDER BY at, id""",
        case_id,
    )
    return [dict(row) for row in rows]


# -- the set-based submission path (submissions.py): one statement per table ----------


async def find_many(
    conn: asyncpg.Connection, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], StoredReferral]:
    """`find` for many (hospital_id, referral_id) at once, their cases locked likewise."""
    if not keys:
        return {}
    rows = await conn.fetch(
        """SELECT r.hospital_id, r.referral_id, r.case_id, r.content_hash, r.outcome,
                  c.open, c.discharged
           FROM unnest($1::text[], $2::text[]) AS k (hospital_id, referral_id)
           JOIN referrals r USING (hospital_id, referral_id)
           JOIN cases c ON c.case_id = r.case_id
           ORDER BY c.case_id
           FOR UPDATE OF c""",
        [k[0] for k in keys],
        [k[1] for k in keys],
    )
    return {
        (row["hospital_id"], row["referral_id"]): StoredReferral(
            case_id=row["case_id"],
            content_hash=row["content_hash"],
            outcome=row["outcome"],
            open=row["open"],
            discharged=row["discharged"],
        )
        for row in rows
    }


async def persons_for_many(
    conn: asyncpg.Connection, keys_and_new_ids: Sequence[tuple[str, str]]
) -> dict[str, str]:
    """`person_for` for many distinct patient keys at once: {patient_key: person_id}.
    Sorted by key, so concurrent batches lock persons in the same order."""
    if not keys_and_new_ids:
        return {}
    rows = await conn.fetch(
        """INSERT INTO persons (patient_key, person_id)
           SELECT * FROM unnest($1::text[], $2::text[]) AS p (patient_key, person_id)
           ORDER BY patient_key
           ON CONFLICT (patient_key) DO UPDATE SET patient_key = EXCLUDED.patient_key
           RETURNING patient_key, person_id""",
        [k for k, _ in keys_and_new_ids],
        [n for _, n in keys_and_new_ids],
    )
    return {row["patient_key"]: row["person_id"] for row in rows}


async def open_cases_of(conn: asyncpg.Connection, person_ids: Sequence[str]) -> dict[str, str]:
    """`open_case_of` for many persons at once: {person_id: their oldest open case}."""
    if not person_ids:
        return {}
    rows = await conn.fetch(
        """SELECT DISTINCT ON (person_id) person_id, case_id FROM cases
           WHERE person_id = ANY($1::text[]) AND open
           ORDER BY person_id, created_at""",
        list(person_ids),
    )
    return {row["person_id"]: row["case_id"] for row in rows}


async def add_cases(
    conn: asyncpg.Connection, cases: Sequence[tuple[str, str | None, bool]]
) -> None:
    """Many (case_id, person_id, open) in one statement."""
    if cases:
        await conn.execute(
            """INSERT INTO cases (case_id, person_id, open)
               SELECT * FROM unnest($1::text[], $2::text[], $3::boolean[])""",
            [c[0] for c in cases],
            [c[1] for c in cases],
            [c[2] for c in cases],
        )


@dataclass(frozen=True)
class NewReferral:
    hospital_id: str
    referral_id: str
    case_id: str
    content_hash: str | None
    outcome: str
    submission: dict[str, Any] | None


async def add_referrals(conn: asyncpg.Connection, referrals: Sequence[NewReferral]) -> None:
    """Many referrals in one statement (their cases written first)."""
    if referrals:
        await conn.execute(
            """INSERT INTO referrals (hospital_id, referral_id, case_id, content_hash, outcome,
                                      submission)
               SELECT h, r, c, ch, o, s::jsonb
               FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                           $6::text[]) AS n (h, r, c, ch, o, s)""",
            [r.hospital_id for r in referrals],
            [r.referral_id for r in referrals],
            [r.case_id for r in referrals],
            [r.content_hash for r in referrals],
            [r.outcome for r in referrals],
            # As JSON text: asyncpg would take lists inside for a multi-dimensional array.
            [None if r.submission is None else json.dumps(r.submission) for r in referrals],
        )
