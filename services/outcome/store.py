"""Outcome's SQL."""

from __future__ import annotations

from typing import Any

import asyncpg


async def get_or_create(
    conn: asyncpg.Connection, case_id: str, hospital_id: str, referral_id: str
) -> asyncpg.Record:
    await conn.execute(
        """INSERT INTO referral_status (case_id, hospital_id, referral_id) VALUES ($1, $2, $3)
           ON CONFLICT (case_id) DO NOTHING""",
        case_id,
        hospital_id,
        referral_id,
    )
    row: asyncpg.Record = await conn.fetchrow(
        "SELECT * FROM referral_status WHERE case_id = $1 FOR UPDATE", case_id
    )
    return row


async def save_status(
    conn: asyncpg.Connection,
    case_id: str,
    *,
    sequence: int,
    status: str,
    business_status: str,
    reason_code: str | None,
    reason: str | None,
    details: dict[str, Any],
) -> None:
    await conn.execute(
        """UPDATE referral_status SET sequence = $2, status = $3, business_status = $4,
               reason_code = $5, reason = $6, details = $7, updated_at = now()
           WHERE case_id = $1""",
        case_id,
        sequence,
        status,
        business_status,
        reason_code,
        reason,
        details,
    )


async def set_fields(conn: asyncpg.Connection, case_id: str, **fields: Any) -> None:
    columns = ", ".join(f"{name} = ${i}" for i, name in enumerate(fields, start=2))
    await conn.execute(
        f"UPDATE referral_status SET {columns} WHERE case_id = $1", case_id, *fields.values()
    )
