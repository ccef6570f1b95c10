"""Outcome's SQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from contracts import hospital_v1 as hv1
from services.outcome.status_machine import Feed


async def case(conn: asyncpg.Connection, case_id: str) -> asyncpg.Record:
    """The case's row, created empty on first sight and locked for this transaction."""
    await conn.execute(
        "INSERT INTO cases (case_id) VALUES ($1) ON CONFLICT (case_id) DO NOTHING", case_id
    )
    row: asyncpg.Record = await conn.fetchrow(
        "SELECT * FROM cases WHERE case_id = $1 FOR UPDATE", case_id
    )
    return row


async def feeds(
    conn: asyncpg.Connection, case_id: str, hospital_id: str, referral_id: str
) -> list[asyncpg.Record]:
    """The feeds of every referral following the case, and of the referral the event
    names wherever it is (it may be about to follow this case), locked: a referral's
    sequence and status change only under this transaction."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT hospital_id, referral_id, case_id, sequence, status, held_from
             FROM referrals
            WHERE case_id = $1 OR (hospital_id = $2 AND referral_id = $3)
            ORDER BY hospital_id, referral_id
              FOR UPDATE""",
        case_id,
        hospital_id,
        referral_id,
    )
    return rows


async def save_feeds(conn: asyncpg.Connection, case_id: str, feeds: Sequence[Feed]) -> None:
    """Write the feeds a decision changed; each follows this case from now on."""
    if not feeds:
        return
    await conn.executemany(
        """INSERT INTO referrals (hospital_id, referral_id, case_id, sequence, status, held_from)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (hospital_id, referral_id) DO UPDATE
              SET case_id = EXCLUDED.case_id, sequence = EXCLUDED.sequence,
                  status = EXCLUDED.status, held_from = EXCLUDED.held_from""",
        [
            (
                f.hospital_id,
                f.referral_id,
                case_id,
                f.sequence,
                f.position.status.value if f.position.status else None,
                f.position.held_from.value if f.position.held_from else None,
            )
            for f in feeds
        ],
    )


async def save_case(conn: asyncpg.Connection, case_id: str, fields: dict[str, Any]) -> None:
    columns = ", ".join(f"{name} = ${i}" for i, name in enumerate(fields, start=2))
    await conn.execute(
        f"UPDATE cases SET {columns}, updated_at = now() WHERE case_id = $1",
        case_id,
        *fields.values(),
    )


async def record_sent(
    conn: asyncpg.Connection, hospital_id: str, message: hv1.StatusChanged
) -> None:
    """Keep the update sent (a hv1.StatusChanged) for the case page's timeline; a
    redelivered record's repeat of it changes nothing."""
    await conn.execute(
        """INSERT INTO updates_sent (hospital_id, referral_id, sequence, case_id, status,
                                     business_status, reason_code, reason, reason_ko,
                                     occurred_at, details)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
           ON CONFLICT DO NOTHING""",
        hospital_id,
        message.referral_id,
        message.sequence,
        message.case_id,
        message.status.value,
        message.business_status,
        message.reason_code,
        message.reason,
        message.reason_ko,
        message.occurred_at,
        message.model_dump(mode="json")["details"],
    )


async def updates_sent(conn: asyncpg.Connection, case_id: str) -> list[asyncpg.Record]:
    """Every update sent for the case, in the order they were sent."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT hospital_id, referral_id, sequence, status, business_status, reason_code,
                  reason, reason_ko, occurred_at, details
             FROM updates_sent WHERE case_id = $1
            ORDER BY occurred_at, hospital_id, referral_id, sequence""",
        case_id,
    )
    return rows
