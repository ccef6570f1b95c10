"""The portal's SQL: referrals (drafts and submissions) and the events it sent.
Every read names the hospital: a user's hospital is part of every key they reach."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg


@dataclass(frozen=True)
class Referral:
    id: int
    hospital_id: str
    referral_id: str | None
    state: str
    form: dict[str, list[str]]
    submission: dict[str, Any] | None
    created_by: str
    updated_at: datetime
    submitted_at: datetime | None

    @property
    def patient_name(self) -> str:
        source = self.submission or {}
        if source:
            return str(source.get("patient", {}).get("name", ""))
        return (self.form.get("patient.name") or [""])[0]


@dataclass(frozen=True)
class SentEvent:
    ce_type: str
    ce_id: str
    data: dict[str, Any]
    sent_by: str
    sent_at: datetime


_COLUMNS = (
    "id, hospital_id, referral_id, state, form, submission, created_by, updated_at, submitted_at"
)


def _referral(row: asyncpg.Record) -> Referral:
    return Referral(**dict(row))


async def list_referrals(conn: asyncpg.Connection, hospital_id: str) -> list[Referral]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM referrals WHERE hospital_id = $1 ORDER BY updated_at DESC",
        hospital_id,
    )
    return [_referral(r) for r in rows]


async def draft(conn: asyncpg.Connection, hospital_id: str, draft_id: int) -> Referral | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM referrals WHERE hospital_id = $1 AND id = $2 AND state = 'draft'",
        hospital_id,
        draft_id,
    )
    return _referral(row) if row else None


async def submitted(
    conn: asyncpg.Connection, hospital_id: str, referral_id: str, *, lock: bool = False
) -> Referral | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM referrals"
        " WHERE hospital_id = $1 AND referral_id = $2 AND state = 'submitted'"
        + (" FOR UPDATE" if lock else ""),
        hospital_id,
        referral_id,
    )
    return _referral(row) if row else None


async def save_draft(
    conn: asyncpg.Connection,
    hospital_id: str,
    draft_id: int | None,
    form: dict[str, list[str]],
    username: str,
) -> int | None:
    """Insert or update a draft; None when `draft_id` is not a draft of this hospital."""
    referral_id = (form.get("referral_id") or [""])[0].strip() or None
    if draft_id is None:
        new_id: int = await conn.fetchval(
            """INSERT INTO referrals (hospital_id, referral_id, state, form, created_by)
               VALUES ($1, $2, 'draft', $3, $4) RETURNING id""",
            hospital_id,
            referral_id,
            form,
            username,
        )
        return new_id
    updated: int | None = await conn.fetchval(
        """UPDATE referrals SET form = $3, referral_id = $4, updated_at = now()
           WHERE hospital_id = $1 AND id = $2 AND state = 'draft' RETURNING id""",
        hospital_id,
        draft_id,
        form,
        referral_id,
    )
    return updated


async def id_taken(conn: asyncpg.Connection, hospital_id: str, referral_id: str) -> bool:
    taken: bool = await conn.fetchval(
        """SELECT EXISTS (SELECT 1 FROM referrals WHERE hospital_id = $1
               AND referral_id = $2 AND state = 'submitted')""",
        hospital_id,
        referral_id,
    )
    return taken


async def mark_submitted(
    conn: asyncpg.Connection,
    hospital_id: str,
    draft_id: int | None,
    submission: dict[str, Any],
    form: dict[str, list[str]],
    username: str,
    submitted_at: datetime,
) -> None:
    if draft_id is None:
        await conn.execute(
            """INSERT INTO referrals (hospital_id, referral_id, state, form, submission,
                   created_by, submitted_at)
               VALUES ($1, $2, 'submitted', $3, $4, $5, $6)""",
            hospital_id,
            submission["referral_id"],
            form,
            submission,
            username,
            submitted_at,
        )
        return
    await conn.execute(
        """UPDATE referrals SET state = 'submitted', referral_id = $3, form = $4,
               submission = $5, submitted_at = $6, updated_at = now()
           WHERE hospital_id = $1 AND id = $2 AND state = 'draft'""",
        hospital_id,
        draft_id,
        submission["referral_id"],
        form,
        submission,
        submitted_at,
    )


async def record_sent(
    conn: asyncpg.Connection,
    hospital_id: str,
    referral_id: str,
    ce_type: str,
    ce_id: str,
    data: dict[str, Any],
    username: str,
) -> None:
    await conn.execute(
        """INSERT INTO sent_events (hospital_id, referral_id, ce_type, ce_id, data, sent_by)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        hospital_id,
        referral_id,
        ce_type,
        ce_id,
        data,
        username,
    )
    await conn.execute(
        "UPDATE referrals SET updated_at = now() WHERE hospital_id = $1 AND referral_id = $2"
        " AND state = 'submitted'",
        hospital_id,
        referral_id,
    )


async def sent_events(
    conn: asyncpg.Connection, hospital_id: str, referral_id: str
) -> list[SentEvent]:
    rows = await conn.fetch(
        """SELECT ce_type, ce_id, data, sent_by, sent_at FROM sent_events
           WHERE hospital_id = $1 AND referral_id = $2 ORDER BY id""",
        hospital_id,
        referral_id,
    )
    return [SentEvent(**dict(r)) for r in rows]


def as_json(model_json: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(model_json)
    return data
