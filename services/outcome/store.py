"""Outcome's SQL."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import asyncpg

from contracts import hospital_v1 as hv1
from services.outcome.status_machine import Feed


async def lock_cases(
    conn: asyncpg.Connection, case_ids: Iterable[str]
) -> dict[str, asyncpg.Record]:
    """The cases' rows, created empty on first sight and locked for this transaction
    (in case id order, so two instances locking overlapping sets never deadlock)."""
    ids = sorted(case_ids)
    await conn.execute(
        """INSERT INTO cases (case_id) SELECT unnest($1::text[]) ORDER BY 1
           ON CONFLICT (case_id) DO NOTHING""",
        ids,
    )
    rows = await conn.fetch(
        "SELECT * FROM cases WHERE case_id = ANY($1::text[]) ORDER BY case_id FOR UPDATE", ids
    )
    return {row["case_id"]: row for row in rows}


async def lock_feeds(
    conn: asyncpg.Connection, case_ids: Iterable[str], referrals: Iterable[tuple[str, str]]
) -> list[asyncpg.Record]:
    """The feeds of every referral following the cases, and of the referrals the events
    name wherever they are (one may be about to follow another case), locked: a
    referral's sequence and status change only under this transaction."""
    named = sorted(referrals)
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT hospital_id, referral_id, case_id, sequence, status, held_from
             FROM referrals
            WHERE case_id = ANY($1::text[])
               OR (hospital_id, referral_id) IN (SELECT * FROM unnest($2::text[], $3::text[]))
            ORDER BY hospital_id, referral_id
              FOR UPDATE""",
        sorted(case_ids),
        [hospital_id for hospital_id, _ in named],
        [referral_id for _, referral_id in named],
    )
    return rows


async def save_feeds(conn: asyncpg.Connection, feeds: Sequence[tuple[str, Feed]]) -> None:
    """Write the feeds decisions changed, each with the case it follows from now on."""
    if not feeds:
        return
    await conn.execute(
        """INSERT INTO referrals (hospital_id, referral_id, case_id, sequence, status, held_from)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[],
                                $6::text[])
           ON CONFLICT (hospital_id, referral_id) DO UPDATE
              SET case_id = EXCLUDED.case_id, sequence = EXCLUDED.sequence,
                  status = EXCLUDED.status, held_from = EXCLUDED.held_from""",
        [f.hospital_id for _, f in feeds],
        [f.referral_id for _, f in feeds],
        [case_id for case_id, _ in feeds],
        [f.sequence for _, f in feeds],
        [f.position.status.value if f.position.status else None for _, f in feeds],
        [f.position.held_from.value if f.position.held_from else None for _, f in feeds],
    )


# The case columns a decision writes; the jsonb ones travel as JSON text (unnest of
# a text array), the same encoding as the connection's jsonb codec.
_CASE_TEXT = ("status", "business_status", "reason_code", "reason")
_CASE_JSON = ("path", "plan", "closure", "details")


async def save_cases(conn: asyncpg.Connection, cases: Mapping[str, Mapping[str, Any]]) -> None:
    """Write the cases decisions changed: {case_id: the columns above}."""
    if not cases:
        return
    ids = sorted(cases)
    await conn.execute(
        """UPDATE cases c
              SET status = u.status, business_status = u.business_status,
                  reason_code = u.reason_code, reason = u.reason, path = u.path::jsonb,
                  plan = u.plan::jsonb, closure = u.closure::jsonb,
                  details = u.details::jsonb, updated_at = now()
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                         $6::text[], $7::text[], $8::text[], $9::text[])
                  AS u(case_id, status, business_status, reason_code, reason, path, plan,
                       closure, details)
            WHERE c.case_id = u.case_id""",
        ids,
        *([cases[i][name] for i in ids] for name in _CASE_TEXT),
        *([_json(cases[i][name]) for i in ids] for name in _CASE_JSON),
    )


def _json(value: Any) -> str | None:
    # SQL NULL stays NULL (a case with no plan), not the JSON null.
    return None if value is None else json.dumps(value)


async def record_sent(
    conn: asyncpg.Connection, sent: Sequence[tuple[str, hv1.StatusChanged]]
) -> None:
    """Keep the updates sent ((hospital_id, hv1.StatusChanged)) for the case page's
    timeline; a redelivered record's repeat of one changes nothing."""
    if not sent:
        return
    messages = [message for _, message in sent]
    await conn.execute(
        """INSERT INTO updates_sent (hospital_id, referral_id, sequence, case_id, status,
                                     business_status, reason_code, reason, reason_ko,
                                     occurred_at, details)
           SELECT h, r, s, c, st, b, rc, re, rk, o, d::jsonb
             FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[],
                         $6::text[], $7::text[], $8::text[], $9::text[], $10::timestamptz[],
                         $11::text[]) AS u(h, r, s, c, st, b, rc, re, rk, o, d)
           ON CONFLICT DO NOTHING""",
        [hospital_id for hospital_id, _ in sent],
        [m.referral_id for m in messages],
        [m.sequence for m in messages],
        [m.case_id for m in messages],
        [m.status.value for m in messages],
        [m.business_status for m in messages],
        [m.reason_code for m in messages],
        [m.reason for m in messages],
        [m.reason_ko for m in messages],
        [m.occurred_at for m in messages],
        [json.dumps(m.model_dump(mode="json")["details"]) for m in messages],
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
