"""Pure intake rules: what a hospital record says (`read_hospital_record`), is a
submission acceptable, what a follow-up changes, and what the case looks like on
care.cases. No I/O: everything needed is passed in."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

from pydantic import ValidationError

from contracts.cases import CaseEvent
from contracts.cloudevents import Envelope, EnvelopeError
from contracts.hospital_v1 import (
    INBOUND_TYPES,
    PatientDischarged,
    ReferralCancelled,
    ReferralSubmitted,
    ReferralUpdated,
)
from contracts.intake import (
    CaseAccepted,
    CaseCancelled,
    CaseDischarged,
    CaseReadmitted,
    CaseReceived,
    CaseStatusRequested,
    DischargeDateChanged,
    FieldError,
)
from contracts.topics import hospital_of
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

CONTRACT_REASON = "the record does not follow the hospital contract v1"
# The longest referral id a hospital may use (the contract's ReferralId).
MAX_REFERRAL_ID = 64


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
        # First contact: the year's deadline rule (Korean business days where it says so).
        review_deadline=policy.deadlines.review.due(submission.submitted_at, submission.priority),
    )


def patient_key(submission: ReferralSubmitted) -> str:
    """Who the patient is, for matching only: name (spaces and case folded) and birth date.

    Kept in intake's database alone. Two hospitals referring the same person get
    the same key; a typo in the name makes two people, which a coordinator can
    merge, whereas a false match would mix two people's care.
    """
    return person_key(submission.patient.name, submission.patient.birth_date)


def person_key(name: str, birth_date: date) -> str:
    """The patient key of a name and birth date (a search by them finds the person)."""
    folded = "".join(name.split()).casefold()
    return hashlib.sha256(f"{folded}|{birth_date.isoformat()}".encode()).hexdigest()


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


# --- reading a hospital record ----------------------------------------------------------


@dataclass(frozen=True)
class Unaddressed:
    """Not tied to a hospital's referral: nobody to answer, so it is dead-lettered."""

    reason: str


@dataclass(frozen=True)
class Invalid:
    """Refused with a `rejected` update to the hospital, under its referral id."""

    hospital_id: str
    referral_id: str
    reason_code: str
    reason: str
    errors: list[FieldError]


@dataclass(frozen=True)
class Submitted:
    """A valid submission: `data` is what intake stores, `content_hash` spots re-sends."""

    event: ReferralSubmitted
    data: dict[str, Any]
    content_hash: str


FollowUpEvent = ReferralUpdated | PatientDischarged | ReferralCancelled


@dataclass(frozen=True)
class FollowUp:
    """A valid update, discharge or cancellation of a referral; `data` is stored as sent."""

    event: FollowUpEvent
    data: dict[str, Any]


def address(topic: str, key: str | None) -> tuple[str, str] | Unaddressed:
    """The (hospital id, referral id) a record belongs to: its topic and its key."""
    hospital_id = hospital_of(topic)
    if hospital_id is None:
        return Unaddressed(f"intake does not read {topic}")
    if not key or len(key) > MAX_REFERRAL_ID:
        return Unaddressed("record has no usable key: cannot tie it to a referral")
    return hospital_id, key


def read_hospital_record(
    topic: str,
    key: str | None,
    headers: Sequence[tuple[str, bytes]],
    value: bytes,
    *,
    policies: PolicyBook,
    registry: Registry,
    now: datetime,
) -> Unaddressed | Invalid | Submitted | FollowUp:
    """What one record from `hospital.<h>.referrals` says, checked in the order a
    hospital can fix it: envelope, JSON, the contract, plausible dates, then that the
    record is what its key and topic claim."""
    where = address(topic, key)
    if isinstance(where, Unaddressed):
        return where
    hospital_id, referral_id = where

    def invalid(errors: list[FieldError]) -> Invalid:
        return Invalid(hospital_id, referral_id, "invalid-referral", CONTRACT_REASON, errors)

    parsed = _parse(headers, value)
    if isinstance(parsed, FieldError):
        return invalid([parsed])
    model, text, data = parsed
    try:
        # Strict: the JSON types of the contract, no coercion ("1" is not a household
        # size, 1 is not a consent); ISO 8601 strings are how JSON carries dates.
        event: Any = model.model_validate_json(text, strict=True)
    except ValidationError as exc:
        return invalid(field_errors(exc))
    if isinstance(event, ReferralSubmitted):
        errors = implausible(event, policies=policies, now=now)
        if errors:
            return invalid(errors)
    if event.referral_id != referral_id:
        return invalid([_envelope_error("referral_id", "differs from the record key")])
    if event.hospital_id != hospital_id or not registry.is_registered(hospital_id):
        return Invalid(
            hospital_id,
            referral_id,
            "unknown-hospital",
            "hospital_id is not the hospital this topic belongs to",
            [FieldError(field="hospital_id", message="does not match the topic", type="mismatch")],
        )
    if isinstance(event, ReferralSubmitted):
        return Submitted(event, data, content_hash(data))
    return FollowUp(event, data)


def _parse(
    headers: Sequence[tuple[str, bytes]], value: bytes
) -> tuple[type[Any], str, dict[str, Any]] | FieldError:
    """The contract model the envelope names, the text and the JSON object; or the
    first thing wrong with them."""
    try:
        envelope = Envelope.from_headers(headers)
    except EnvelopeError as exc:
        return _envelope_error("headers", str(exc))
    model = INBOUND_TYPES.get(envelope.type)
    if model is None:
        return _envelope_error("ce_type", "unknown event type")
    try:
        # Decoded as UTF-8 first: json.loads would guess UTF-16/32 from raw bytes, but
        # JSON between systems is UTF-8 (RFC 8259, 8.1).
        text = value.decode("utf-8")
        data = json.loads(text, parse_constant=refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):  # JSONDecodeError: ValueError
        return _envelope_error("data", "not JSON")
    if not isinstance(data, dict):
        return _envelope_error("data", "not a JSON object")
    nul_at = first_nul(data)
    if nul_at is not None:
        # PostgreSQL text cannot hold NUL; refuse it here rather than fail the insert.
        return _envelope_error(nul_at, "contains a NUL character")
    return model, text, data


def _envelope_error(field: str, message: str) -> FieldError:
    return FieldError(field=field, message=message, type="envelope")


# --- what intake makes of it -------------------------------------------------------------


@dataclass(frozen=True)
class StoredReferral:
    """What intake already holds under a (hospital, referral) id, with its case's flags."""

    case_id: str
    content_hash: str | None
    outcome: str
    open: bool
    discharged: bool


Repeat = Literal["first", "identical", "conflicting", "finished"]


def repeat_of(existing: StoredReferral | None, digest: str) -> Repeat:
    """Whether a submission was seen before under its referral id.

    "finished": the referral under that id ended (rejected, cancelled, completed,
    failed, or refused as a broken record), whatever the content: a new referral needs
    a new id; "identical": a re-send of an open referral, answered with the current
    status; "conflicting": the id of an open referral used for another submission.
    Both refusals leave the referral as it is (hospital contract v1, revision 2)."""
    if existing is None:
        return "first"
    if not existing.open:
        return "finished"
    return "identical" if existing.content_hash == digest else "conflicting"


@dataclass(frozen=True)
class CaseUpdate:
    """A follow-up's effect: the case's flags as they are to be stored, and the case
    event to emit (None: nothing to tell)."""

    open: bool
    discharged: bool
    event: CaseEvent | None


def follow_up(existing: StoredReferral, event: FollowUpEvent, *, now: datetime) -> CaseUpdate:
    """A hospital's update, discharge or cancellation of a referral intake holds."""
    ids = event_ids(existing.case_id, event, now)
    unchanged = CaseUpdate(existing.open, existing.discharged, None)
    if not existing.open:
        # Closed (completed, cancelled, failed or refused): nothing changes, but the
        # hospital still gets an answer.
        return CaseUpdate(False, existing.discharged, CaseStatusRequested(**ids))
    if isinstance(event, ReferralUpdated):
        new_date = event.expected_discharge_date
        if new_date is None:
            return unchanged  # other corrections are kept for people, not announced
        if existing.discharged:
            # A new discharge date for a patient already home: back in hospital.
            return CaseUpdate(True, False, CaseReadmitted(**ids, expected_discharge_date=new_date))
        return CaseUpdate(
            True, False, DischargeDateChanged(**ids, expected_discharge_date=new_date)
        )
    if isinstance(event, PatientDischarged):
        return CaseUpdate(True, True, CaseDischarged(**ids, discharged_at=event.discharged_at))
    return CaseUpdate(
        False, existing.discharged, CaseCancelled(**ids, reason_code=event.reason_code)
    )


def event_ids(case_id: str, event: Any, now: datetime) -> dict[str, Any]:
    """The fields every case event carries, for the referral `event` names."""
    return {
        "case_id": case_id,
        "hospital_id": event.hospital_id,
        "referral_id": event.referral_id,
        "occurred_at": now,
    }


def received(case_id: str, sub: ReferralSubmitted, now: datetime, age_band: str) -> CaseReceived:
    """The receipt on care.cases: the case's facts without personal data (an age band,
    the district and dong, no name, birth date, phone, street or income)."""
    patient = sub.patient
    return CaseReceived(
        **event_ids(case_id, sub, now),
        submitted_at=sub.submitted_at,
        age_band=age_band,
        district=patient.address.district,
        dong=patient.address.dong,
        requested_services=list(sub.requested_services),
        admission_date=sub.admission_date,
        expected_discharge_date=sub.expected_discharge_date,
        priority=sub.priority,
        mobility=sub.mobility,
        registered_disability=patient.registered_disability,
        lives_alone=patient.lives_alone,
        has_family_caregiver=patient.has_family_caregiver,
        uses_public_care=patient.uses_public_care,
        do_not_contact=sub.do_not_contact,
    )


def accepted(
    case_id: str, sub: ReferralSubmitted, decision: Triage, person_id: str, now: datetime
) -> CaseAccepted:
    return CaseAccepted(
        **event_ids(case_id, sub, now),
        person_id=person_id,
        policy_year=decision.policy_year,
        fee_support=decision.fee_support,  # type: ignore[arg-type]
        centre_id=decision.centre_id,
        district=sub.patient.address.district,
        priority=sub.priority,
        review_deadline=decision.review_deadline,
        expected_discharge_date=sub.expected_discharge_date,
        requested_services=list(sub.requested_services),
    )


# --- a coordinator's exits (issue 10) -------------------------------------------------

# The cancellation reasons a coordinator of the centre may give (the contract's
# `cancelled` codes but the hospital's own withdrawal, which only a hospital sends).
CoordinatorCancelReason = Literal[
    "deceased", "transferred", "declined-by-patient", "consent-withdrawn"
]
COORDINATOR_CANCEL_REASONS: tuple[CoordinatorCancelReason, ...] = (
    "deceased",
    "transferred",
    "declined-by-patient",
    "consent-withdrawn",
)


@dataclass(frozen=True)
class CaseToEnd:
    """A case as intake holds it, with the referral that opened it (whose ids its
    events carry; outcome tells every referral that follows the case)."""

    case_id: str
    open: bool
    discharged: bool
    hospital_id: str
    referral_id: str


@dataclass(frozen=True)
class ExitRefused:
    """Why an exit cannot be taken: a stable code (the API's `error`) and a message."""

    code: str
    message: str


def coordinator_cancel(
    case: CaseToEnd, reason_code: str, *, now: datetime
) -> CaseUpdate | ExitRefused:
    """A coordinator ends the case at any open point with a coded reason: the same
    `CaseCancelled` a hospital's withdrawal causes (so every service closes its work and
    the hospital hears `cancelled` with the code), marked as the centre's."""
    if reason_code not in COORDINATOR_CANCEL_REASONS:
        return ExitRefused(
            "invalid-request",
            f"reason_code must be one of {', '.join(COORDINATOR_CANCEL_REASONS)}",
        )
    if not case.open:
        return ExitRefused("case-closed", "the case is already finished: nothing to cancel")
    event = CaseCancelled(
        case_id=case.case_id,
        hospital_id=case.hospital_id,
        referral_id=case.referral_id,
        occurred_at=now,
        reason_code=reason_code,  # type: ignore[arg-type]
        cancelled_by="centre",
    )
    return CaseUpdate(False, case.discharged, event)
