"""Reads of intake's personal data for people, each one recorded.

The submissions (names, birth dates, phones, addresses, income, free text)
live only in intake's database. The coordinators' console shows them to the
case's own centre through `case_details`, which writes an `access_audit` row
in the same transaction: no view without a record of who looked and why.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from contracts import hospital_v1 as hv1

# Fields a hospital may correct after submitting (referral.updated); the latest wins.
_CORRECTABLE = ("expected_discharge_date", "care_precautions", "priority", "do_not_contact")


async def case_details(
    conn: asyncpg.Connection, case_id: str, *, viewer: str, purpose: str = "task-detail"
) -> dict[str, Any] | None:
    """The patient's contact and care facts for every referral of the case, as the
    hospitals sent them (with their later corrections); None if intake holds none.

    The caller decides who may see them; this records that `viewer` did.
    """
    async with conn.transaction():
        rows = await conn.fetch(
            """SELECT hospital_id, referral_id, outcome, submission, received_at
               FROM referrals
               WHERE case_id = $1 AND submission IS NOT NULL
               ORDER BY received_at, hospital_id, referral_id""",
            case_id,
        )
        if not rows:
            return None
        events = await conn.fetch(
            """SELECT ce_type, data, received_at FROM referral_events
               WHERE case_id = $1 ORDER BY id""",
            case_id,
        )
        await conn.execute(
            "INSERT INTO access_audit (case_id, viewer, purpose) VALUES ($1, $2, $3)",
            case_id,
            viewer,
            purpose,
        )
    return {
        "case_id": case_id,
        "referrals": [_referral(row, events) for row in rows],
    }


async def case_district(conn: asyncpg.Connection, case_id: str) -> str | None:
    """The district of the referral that opened the case (outcome `accepted`): the
    one intake routed to a centre when it accepted the case; None if there is none."""
    district: str | None = await conn.fetchval(
        """SELECT submission->'patient'->'address'->>'district' FROM referrals
           WHERE case_id = $1 AND outcome = 'accepted' AND submission IS NOT NULL
           ORDER BY received_at LIMIT 1""",
        case_id,
    )
    return district


def _referral(row: asyncpg.Record, events: list[asyncpg.Record]) -> dict[str, Any]:
    sub: dict[str, Any] = row["submission"]
    patient: dict[str, Any] = sub.get("patient") or {}
    address: dict[str, Any] = patient.get("address") or {}
    social_worker: dict[str, Any] = sub.get("social_worker") or {}
    consent: dict[str, Any] = sub.get("consent") or {}
    details: dict[str, Any] = {
        "hospital_id": row["hospital_id"],
        "referral_id": row["referral_id"],
        "outcome": row["outcome"],
        "received_at": row["received_at"],
        "submitted_at": sub.get("submitted_at"),
        "patient": {
            "name": patient.get("name"),
            "birth_date": patient.get("birth_date"),
            "sex": patient.get("sex"),
            "phone": patient.get("phone"),
            "address": {
                "district": address.get("district"),
                "dong": address.get("dong"),
                "street": address.get("street"),
                "detail": address.get("detail"),
            },
            "household_size": patient.get("household_size"),
            "monthly_household_income_krw": patient.get("monthly_household_income_krw"),
            "registered_disability": patient.get("registered_disability"),
            "lives_alone": patient.get("lives_alone"),
            "has_family_caregiver": patient.get("has_family_caregiver"),
            "uses_public_care": patient.get("uses_public_care"),
        },
        "mobility": sub.get("mobility"),
        "care_precautions": sub.get("care_precautions", ""),
        "social_worker": {
            "name": social_worker.get("name"),
            "phone": social_worker.get("phone"),
            "email": social_worker.get("email"),
        },
        "consent": {
            "given": consent.get("given"),
            "obtained_at": consent.get("obtained_at"),
            "method": consent.get("method"),
        },
        "admission_date": sub.get("admission_date"),
        "expected_discharge_date": sub.get("expected_discharge_date"),
        "priority": sub.get("priority"),
        "do_not_contact": sub.get("do_not_contact", False),
        "requested_services": list(sub.get("requested_services") or []),
        "updated_at": None,
        "discharged_at": None,
    }
    updated_at: datetime | None = None
    for event in events:
        data: dict[str, Any] = event["data"]
        if data.get("referral_id") != row["referral_id"]:
            continue
        if event["ce_type"] == hv1.UPDATED:
            for name in _CORRECTABLE:
                if data.get(name) is not None:
                    details[name] = data[name]
            updated_at = event["received_at"]
        elif event["ce_type"] == hv1.DISCHARGED:
            details["discharged_at"] = data.get("discharged_at")
    details["updated_at"] = updated_at
    return details
