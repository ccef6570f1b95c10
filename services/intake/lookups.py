"""Finding cases for people (issue 10): cards for a page of cases, a search of the
centre's cases, and a case's earlier cases of the same person. Intake's SQL for
them; the rules are in services.intake.cards.

Every answer is built from the submissions intake still holds: once a case's
personal data is destroyed it has no card, no search finds it by name, and no
later case links to it, without anything else to change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg

from services.intake import cards
from services.intake.domain import person_key


@dataclass(frozen=True)
class Opening:
    """A case, whether it is open, when it began, and the submission that opened it."""

    case_id: str
    open: bool
    created_at: datetime
    submission: dict[str, Any] | None

    @property
    def district(self) -> str | None:
        patient = (self.submission or {}).get("patient") or {}
        district: str | None = (patient.get("address") or {}).get("district")
        return district

    def card(self) -> cards.Card:
        return cards.card(self.case_id, self.open, self.submission)


async def openings(conn: asyncpg.Connection, case_ids: list[str]) -> dict[str, Opening]:
    """Each known case's opening referral (the accepted one intake routed by its
    district), in one query for the whole list. The list bounds both tables: with it
    only on `referrals`, PostgreSQL read every case to join them (issue 12)."""
    rows = await conn.fetch(
        """SELECT DISTINCT ON (r.case_id) r.case_id, c.open, c.created_at, r.submission
           FROM referrals r JOIN cases c USING (case_id)
           WHERE r.case_id = ANY($1::text[]) AND c.case_id = ANY($1::text[])
             AND r.outcome = 'accepted'
             AND r.submission IS NOT NULL
           ORDER BY r.case_id, r.received_at""",
        case_ids,
    )
    return {
        r["case_id"]: Opening(r["case_id"], r["open"], r["created_at"], r["submission"])
        for r in rows
    }


# What a card reads of the opening submission (services.intake.cards.card), picked
# out by PostgreSQL: decoding whole submissions was most of a queue page's time in
# intake (issue 12). Absent fields come back as JSON null, which the card reads as
# not held, like a missing key.
_CARD_FIELDS = """jsonb_build_object(
    'submitted_at', r.submission -> 'submitted_at',
    'patient', jsonb_build_object(
        'name', r.submission #> '{patient,name}',
        'birth_date', r.submission #> '{patient,birth_date}',
        'address', jsonb_build_object(
            'district', r.submission #> '{patient,address,district}',
            'dong', r.submission #> '{patient,address,dong}')))"""


async def card_openings(conn: asyncpg.Connection, case_ids: list[str]) -> dict[str, Opening]:
    """Like `openings`, each with only the part of its submission a card shows."""
    rows = await conn.fetch(
        f"""SELECT DISTINCT ON (r.case_id) r.case_id, c.open, c.created_at,
                  {_CARD_FIELDS} AS submission
           FROM referrals r JOIN cases c USING (case_id)
           WHERE r.case_id = ANY($1::text[]) AND c.case_id = ANY($1::text[])
             AND r.outcome = 'accepted'
             AND r.submission IS NOT NULL
           ORDER BY r.case_id, r.received_at""",
        case_ids,
    )
    return {
        r["case_id"]: Opening(r["case_id"], r["open"], r["created_at"], r["submission"])
        for r in rows
    }


async def referrals_of(
    conn: asyncpg.Connection, case_ids: list[str]
) -> dict[str, list[dict[str, Any]]]:
    """The hospital referrals each case took in (ids and dates only)."""
    rows = await conn.fetch(
        """SELECT case_id, hospital_id, referral_id, outcome, received_at FROM referrals
           WHERE case_id = ANY($1::text[]) ORDER BY received_at, hospital_id, referral_id""",
        case_ids,
    )
    found: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        found.setdefault(r["case_id"], []).append(
            {
                "hospital_id": r["hospital_id"],
                "referral_id": r["referral_id"],
                "outcome": r["outcome"],
                "received_at": r["received_at"],
            }
        )
    return found


async def cases_by_referral_id(conn: asyncpg.Connection, referral_id: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT DISTINCT case_id FROM referrals WHERE referral_id = $1", referral_id
    )
    return [r["case_id"] for r in rows]


async def cases_of_person(
    conn: asyncpg.Connection, name: str, birth_date: date
) -> tuple[list[str], dict[str, Any]]:
    """The cases of the person with this name and birth date, and the patient they
    were matched on (to check each case still holds it)."""
    rows = await conn.fetch(
        """SELECT c.case_id FROM persons p JOIN cases c USING (person_id)
           WHERE p.patient_key = $1""",
        person_key(name, birth_date),
    )
    wanted = {"patient": {"name": name, "birth_date": birth_date.isoformat()}}
    return [r["case_id"] for r in rows], wanted


async def earlier_cases(conn: asyncpg.Connection, case: Opening) -> list[Opening]:
    """The same person's earlier cases that have closed, if both still hold the
    person's name and birth date."""
    rows = await conn.fetch(
        """SELECT other.case_id FROM cases this JOIN cases other USING (person_id)
           WHERE this.case_id = $1 AND other.case_id <> this.case_id AND NOT other.open
             AND other.created_at < this.created_at""",
        case.case_id,
    )
    found = await openings(conn, [r["case_id"] for r in rows])
    return sorted(
        (o for o in found.values() if cards.same_person(case.submission, o.submission)),
        key=lambda o: o.created_at,
        reverse=True,
    )


async def record_search(
    conn: asyncpg.Connection,
    *,
    viewer: str,
    centre_id: str,
    searched_by: str,
    found: list[str],
) -> None:
    """The search itself, and a view of each case it found (one transaction: the caller's)."""
    await conn.execute(
        """INSERT INTO search_audit (viewer, centre_id, searched_by, found)
           VALUES ($1, $2, $3, $4)""",
        viewer,
        centre_id,
        searched_by,
        len(found),
    )
    if found:
        await conn.execute(
            """INSERT INTO access_audit (case_id, viewer, purpose)
               SELECT unnest($1::text[]), $2, 'search'""",
            found,
            viewer,
        )
