"""Outcome's SQL."""

from __future__ import annotations

from typing import Any

import asyncpg


async def case(conn: asyncpg.Connection, case_id: str) -> asyncpg.Record:
    """The case's row, created empty on first sight and locked for this transaction."""
    await conn.execute(
        "INSERT INTO cases (case_id) VALUES ($1) ON CONFLICT (case_id) DO NOTHING", case_id
    )
    row: asyncpg.Record = await conn.fetchrow(
        "SELECT * FROM cases WHERE case_id = $1 FOR UPDATE", case_id
    )
    return row


async def follow(
    conn: asyncpg.Connection, case_id: str, hospital_id: str, referral_id: str
) -> None:
    """Make the referral one that hears of this case (idempotent). A referral first
    refused as a broken record and then submitted properly moves to the new case,
    keeping its sequence."""
    await conn.execute(
        """INSERT INTO referrals (hospital_id, referral_id, case_id) VALUES ($1, $2, $3)
           ON CONFLICT (hospital_id, referral_id) DO UPDATE SET case_id = EXCLUDED.case_id
           WHERE referrals.case_id <> EXCLUDED.case_id""",
        hospital_id,
        referral_id,
        case_id,
    )


async def followers(conn: asyncpg.Connection, case_id: str) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT hospital_id, referral_id FROM referrals WHERE case_id = $1 ORDER BY hospital_id, referral_id",
        case_id,
    )
    return rows


async def next_sequence(conn: asyncpg.Connection, hospital_id: str, referral_id: str) -> int:
    sequence: int = await conn.fetchval(
        """UPDATE referrals SET sequence = sequence + 1
           WHERE hospital_id = $1 AND referral_id = $2 RETURNING sequence""",
        hospital_id,
        referral_id,
    )
    return sequence


async def save_status(conn: asyncpg.Connection, case_id: str, **fields: Any) -> None:
    columns = ", ".join(f"{name} = ${i}" for i, name in enumerate(fields, start=2))
    await conn.execute(
        f"UPDATE cases SET {columns}, updated_at = now() WHERE case_id = $1",
        case_id,
        *fields.values(),
    )
