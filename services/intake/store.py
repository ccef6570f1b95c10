"""Intake's SQL: the only place that reads or writes its tables."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import asyncpg

from services.intake.domain import StoredReferral


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
