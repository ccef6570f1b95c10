"""Intake's SQL: the only place that reads or writes its tables."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import asyncpg


@dataclass(frozen=True)
class StoredReferral:
    case_id: str
    content_hash: str | None
    outcome: str
    closed: bool


async def find(
    conn: asyncpg.Connection, hospital_id: str, referral_id: str
) -> StoredReferral | None:
    row = await conn.fetchrow(
        "SELECT case_id, content_hash, outcome, closed FROM referrals"
        " WHERE hospital_id = $1 AND referral_id = $2 FOR UPDATE",
        hospital_id,
        referral_id,
    )
    return StoredReferral(**dict(row)) if row else None


async def insert(
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
        """INSERT INTO referrals (hospital_id, referral_id, case_id, content_hash, outcome, submission)
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


async def mark_closed(conn: asyncpg.Connection, case_id: str) -> None:
    await conn.execute("UPDATE referrals SET closed = true WHERE case_id = $1", case_id)


async def person_for(conn: asyncpg.Connection, patient_key: str, new_id: str) -> str:
    """The person id for this patient key, allocating `new_id` on first sight (race-safe)."""
    person_id: str = await conn.fetchval(
        """INSERT INTO persons (patient_key, person_id) VALUES ($1, $2)
           ON CONFLICT (patient_key) DO UPDATE SET patient_key = EXCLUDED.patient_key
           RETURNING person_id""",
        patient_key,
        new_id,
    )
    return person_id
