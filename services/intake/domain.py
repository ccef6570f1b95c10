"""Pure intake rules: is a submission acceptable, and what the case looks like
on care.cases. No I/O: everything needed is passed in."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from contracts.hospital_v1 import ReferralSubmitted
from contracts.intake import FieldError
from services.lib.policy import (
    PolicyBook,
    Registry,
    age_band,
    age_on,
    check_eligibility,
    seoul_date,
)
from services.lib.policy import fee_support as fee_rule
from services.lib.runtime.errors import safe_errors

# Programme design: a Care SOS manager visits within 72 hours; urgent referrals first.
REVIEW_DEADLINE = {"routine": timedelta(hours=72), "urgent": timedelta(hours=24)}


@dataclass(frozen=True)
class Refused:
    reason_code: str
    reason: str


@dataclass(frozen=True)
class Triage:
    policy_year: int
    fee_support: str
    centre_id: str
    age_band: str
    review_deadline: datetime


def field_errors(exc: ValidationError) -> list[FieldError]:
    """Field-by-field errors for the hospital, without echoing the submitted values."""
    return [
        FieldError(field=field, message=message, type=kind)
        for field, message, kind in safe_errors(exc)
    ]


def content_hash(data: dict[str, Any]) -> str:
    """Identical re-submissions hash alike whatever the key order or whitespace."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def triage(
    submission: ReferralSubmitted, *, policies: PolicyBook, registry: Registry
) -> Refused | Triage:
    """Consent first, then the policy year's age and area rules, then routing and fee."""
    if not submission.consent.given:
        return Refused("missing-consent", "no consent to share the referral with the district")
    submitted_on = seoul_date(submission.submitted_at)
    policy = policies.for_date(submitted_on)
    patient = submission.patient
    age = age_on(patient.birth_date, submitted_on)
    refusal = check_eligibility(
        policy,
        age=age,
        registered_disability=patient.registered_disability,
        district=patient.address.district,
    )
    if refusal is not None:
        return Refused(refusal.reason_code, refusal.reason)
    centre = registry.centre_for(patient.address.district)
    if centre is None:
        return Refused(
            "outside-service-area",
            f"no Care SOS centre is registered for {patient.address.district}",
        )
    return Triage(
        policy_year=policy.year,
        fee_support=fee_rule(
            policy,
            household_size=patient.household_size,
            monthly_income=patient.monthly_household_income_krw,
        ),
        centre_id=centre.id,
        age_band=age_band(age),
        review_deadline=submission.submitted_at + REVIEW_DEADLINE[submission.priority],
    )


def patient_key(submission: ReferralSubmitted) -> str:
    """Who the patient is, for matching only: name (spaces and case folded) and birth date.

    Kept in intake's database alone. Two hospitals referring the same person get
    the same key; a typo in the name makes two people, which a coordinator can
    merge, whereas a false match would mix two people's care.
    """
    name = "".join(submission.patient.name.split()).casefold()
    return hashlib.sha256(
        f"{name}|{submission.patient.birth_date.isoformat()}".encode()
    ).hexdigest()


def refuse_constant(name: str) -> object:
    """json.loads hook: NaN and Infinity are not JSON (RFC 8259), whatever Python accepts."""
    raise ValueError(f"{name} is not JSON")


def first_nul(value: object, path: str = "") -> str | None:
    """The path of the first string (or key) holding a NUL character, if any; the NUL
    itself is written as \\u0000 in the path, which must be storable too."""
    if isinstance(value, str):
        return (path or "data") if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            name = str(key).replace("\x00", "\\u0000")
            here = f"{path}.{name}" if path else name
            if "\x00" in str(key):
                return here
            found = first_nul(item, here)
            if found:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = first_nul(item, f"{path}.{index}")
            if found:
                return found
    return None


# A submission's dates must make sense before any rule uses them: a clock a little
# ahead is tolerated, a year-9999 submission is not.
CLOCK_SKEW = timedelta(days=1)
LONGEST_STAY_AHEAD = timedelta(days=366)


def implausible(
    submission: ReferralSubmitted, *, policies: PolicyBook, now: datetime
) -> list[FieldError]:
    """Dates the contract's types allow but no real referral has, as field errors."""
    errors: list[FieldError] = []
    if submission.submitted_at > now + CLOCK_SKEW:
        # Checked before any date arithmetic: near year 9999 it would overflow.
        return [FieldError(field="submitted_at", message="is in the future", type="date")]
    submitted_on = seoul_date(submission.submitted_at)
    if submitted_on.year < min(policies.years):
        errors.append(
            FieldError(
                field="submitted_at",
                message=f"is before {min(policies.years)}, the first year with a policy",
                type="date",
            )
        )
    if submission.patient.birth_date > submitted_on:
        errors.append(
            FieldError(
                field="patient.birth_date", message="is after the submission date", type="date"
            )
        )
    if submission.expected_discharge_date > submitted_on + LONGEST_STAY_AHEAD:
        errors.append(
            FieldError(
                field="expected_discharge_date",
                message="is more than a year after the submission",
                type="date",
            )
        )
    return errors
