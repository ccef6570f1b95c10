"""services/intake/domain.py: what intake makes of a raw hospital record (envelope, JSON,
contract, plausibility, key and topic) and of a follow-up, without any server."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from contracts import hospital_v1 as hv1
from contracts.intake import (
    CaseCancelled,
    CaseDischarged,
    CaseReadmitted,
    CaseStatusRequested,
    DischargeDateChanged,
)
from services.intake import domain
from services.intake.domain import FollowUp, Invalid, StoredReferral, Submitted, Unaddressed
from services.lib.policy import load_policies, load_registry
from services.tools.simulators.referrals import FakeHospital, HospitalRecord

POLICIES = load_policies()
REGISTRY = load_registry()
POLICE = "police-hospital"
NOW = datetime(2025, 6, 2, 3, 0, tzinfo=UTC)
KEEP = "<the record's own key>"


def hospital(hospital_id: str = POLICE) -> FakeHospital:
    return FakeHospital(hospital_id, seed=11)


def submission(**overrides: Any) -> dict[str, Any]:
    overrides.setdefault("submitted_at", NOW - timedelta(hours=1))
    return hospital().submission(referral_id="ref-1", **overrides)


def read(
    record: HospitalRecord,
    *,
    topic: str | None = None,
    key: str | None = KEEP,
    headers: list[tuple[str, bytes]] | None = None,
    value: bytes | None = None,
) -> Unaddressed | Invalid | Submitted | FollowUp:
    """Read a record as the hospital wrote it, with any part replaced."""
    return domain.read_hospital_record(
        topic if topic is not None else record.topic,
        record.key.decode() if key == KEEP else key,
        headers if headers is not None else record.headers,
        value if value is not None else record.value,
        policies=POLICIES,
        registry=REGISTRY,
        now=NOW,
    )


def invalid(result: object) -> Invalid:
    assert isinstance(result, Invalid), result
    assert (result.hospital_id, result.referral_id) == (POLICE, "ref-1")
    return result


def first_error(result: object) -> tuple[str, str, str]:
    refused = invalid(result)
    assert refused.reason_code == "invalid-referral"
    assert refused.reason == domain.CONTRACT_REASON
    error = refused.errors[0]
    return error.field, error.message, error.type


# --- which referral it belongs to -------------------------------------------------------


def test_a_record_on_a_topic_that_is_not_a_hospitals_is_unaddressed() -> None:
    result = read(hospital().submitted(submission()), topic="care.cases")
    assert result == Unaddressed("intake does not read care.cases")


@pytest.mark.parametrize("key", [None, "", "r" * 65])
def test_a_record_without_a_usable_key_is_unaddressed(key: str | None) -> None:
    result = read(hospital().submitted(submission()), key=key)
    assert isinstance(result, Unaddressed)
    assert "key" in result.reason


def test_a_key_of_64_characters_is_usable() -> None:
    assert domain.address("hospital.police-hospital.referrals", "r" * 64) == (POLICE, "r" * 64)


# --- the envelope and the JSON ----------------------------------------------------------


def test_missing_cloudevents_headers_are_an_envelope_error() -> None:
    field, message, kind = first_error(read(hospital().submitted(submission()), headers=[]))
    assert (field, kind) == ("headers", "envelope")
    assert "missing CloudEvents headers" in message


def test_an_unknown_event_type_is_refused() -> None:
    record = hospital().record("carelink.referral.teleported.v1", submission())
    assert first_error(read(record)) == ("ce_type", "unknown event type", "envelope")


@pytest.mark.parametrize(
    "value",
    [b"\xff\xfe{}", b"{not json", b'{"household_size": NaN}', b"[" * 100_000],
    ids=["not-utf8", "broken", "nan", "too-deep"],
)
def test_a_value_that_is_not_json_is_refused(value: bytes) -> None:
    result = read(hospital().submitted(submission()), value=value)
    assert first_error(result) == ("data", "not JSON", "envelope")


def test_json_that_is_not_an_object_is_refused() -> None:
    result = read(hospital().submitted(submission()), value=b"[1, 2]")
    assert first_error(result) == ("data", "not a JSON object", "envelope")


def test_a_nul_character_is_refused_with_its_path() -> None:
    data = submission()
    data["patient"]["name"] = "김\x00철수"
    result = read(hospital().submitted(data))
    assert first_error(result) == ("patient.name", "contains a NUL character", "envelope")


# --- the contract and the dates --------------------------------------------------------


def test_a_contract_violation_is_refused_field_by_field_without_coercion() -> None:
    data = submission()
    data["patient"]["household_size"] = "1"  # a string is not a household size
    field, _, _ = first_error(read(hospital().submitted(data)))
    assert field == "patient.household_size"


def test_a_submission_from_the_future_is_refused_as_implausible() -> None:
    data = submission(submitted_at=NOW + timedelta(days=3))
    assert first_error(read(hospital().submitted(data))) == (
        "submitted_at",
        "is in the future",
        "date",
    )


def test_a_referral_id_that_differs_from_the_key_is_refused() -> None:
    record = hospital().record(hv1.SUBMITTED, submission(), key="ref-1")
    data = json.loads(record.value)
    data["referral_id"] = "ref-2"
    result = read(record, value=json.dumps(data).encode())
    assert first_error(result) == ("referral_id", "differs from the record key", "envelope")


def test_a_hospital_id_that_differs_from_the_topic_is_an_unknown_hospital() -> None:
    data = submission()
    data["hospital_id"] = "severance"
    refused = invalid(read(hospital().submitted(data)))
    assert refused.reason_code == "unknown-hospital"
    assert [(e.field, e.type) for e in refused.errors] == [("hospital_id", "mismatch")]


def test_a_hospital_that_is_not_registered_is_an_unknown_hospital() -> None:
    stranger = FakeHospital("nowhere-hospital", seed=3)
    data = stranger.submission(referral_id="ref-9", submitted_at=NOW - timedelta(hours=1))
    result = read(stranger.submitted(data))
    assert isinstance(result, Invalid)
    assert (result.hospital_id, result.reason_code) == ("nowhere-hospital", "unknown-hospital")


# --- what a valid record is ------------------------------------------------------------


def test_a_valid_submission_is_read_with_what_intake_stores_and_its_content_hash() -> None:
    data = submission()
    result = read(hospital().submitted(data))
    assert isinstance(result, Submitted)
    assert result.event.referral_id == "ref-1"
    assert result.data == data
    assert result.content_hash == domain.content_hash(data)


@pytest.mark.parametrize(
    ("record", "model"),
    [
        (hospital().discharged("ref-1", NOW), hv1.PatientDischarged),
        (hospital().cancelled("ref-1"), hv1.ReferralCancelled),
        (hospital().updated("ref-1", expected_discharge_date="2025-06-10"), hv1.ReferralUpdated),
    ],
    ids=["discharged", "cancelled", "updated"],
)
def test_a_valid_follow_up_is_read_as_a_follow_up(record: HospitalRecord, model: type) -> None:
    result = read(record)
    assert isinstance(result, FollowUp)
    assert isinstance(result.event, model)
    assert result.data == json.loads(record.value)


# --- a submission seen before ------------------------------------------------------------


def stored(
    *, content_hash: str | None = "h1", open: bool = True, discharged: bool = False
) -> StoredReferral:
    return StoredReferral(
        case_id="case-1",
        content_hash=content_hash,
        outcome="accepted",
        open=open,
        discharged=discharged,
    )


@pytest.mark.parametrize(
    ("existing", "expected"),
    [
        (None, "first"),
        (stored(content_hash="h1"), "identical"),
        (stored(content_hash="h0"), "conflicting"),
        # Revision 2: a finished referral id takes no submission at all, not even a
        # corrected one after a broken record (content_hash None, closed).
        (stored(content_hash=None, open=False), "finished"),
        (stored(content_hash="h1", open=False), "finished"),
        (stored(content_hash="h0", open=False), "finished"),
    ],
)
def test_repeat_of_tells_a_first_submission_from_a_resend_a_conflict_or_a_finished_id(
    existing: StoredReferral | None, expected: str
) -> None:
    assert domain.repeat_of(existing, "h1") == expected


# --- what a follow-up changes ------------------------------------------------------------


def follow_up(record: HospitalRecord) -> hv1.ReferralUpdated | hv1.PatientDischarged | Any:
    result = read(record)
    assert isinstance(result, FollowUp)
    return result.event


def test_a_follow_up_for_a_closed_case_changes_nothing_but_asks_for_the_status_again() -> None:
    update = domain.follow_up(stored(open=False), follow_up(hospital().cancelled("ref-1")), now=NOW)
    assert (update.open, update.discharged) == (False, False)
    assert isinstance(update.event, CaseStatusRequested)
    assert (update.event.case_id, update.event.occurred_at) == ("case-1", NOW)


def test_an_update_without_a_new_discharge_date_is_not_announced() -> None:
    event = follow_up(hospital().updated("ref-1", care_precautions="저염식"))
    update = domain.follow_up(stored(), event, now=NOW)
    assert update == domain.CaseUpdate(open=True, discharged=False, event=None)


def test_a_new_discharge_date_before_the_discharge_moves_it() -> None:
    event = follow_up(hospital().updated("ref-1", expected_discharge_date="2025-06-10"))
    update = domain.follow_up(stored(), event, now=NOW)
    assert (update.open, update.discharged) == (True, False)
    assert isinstance(update.event, DischargeDateChanged)
    assert update.event.expected_discharge_date == date(2025, 6, 10)


def test_a_new_discharge_date_after_the_discharge_is_a_readmission() -> None:
    event = follow_up(hospital().updated("ref-1", expected_discharge_date="2025-06-10"))
    update = domain.follow_up(stored(discharged=True), event, now=NOW)
    assert (update.open, update.discharged) == (True, False)
    assert isinstance(update.event, CaseReadmitted)
    assert update.event.expected_discharge_date == date(2025, 6, 10)


def test_a_discharge_marks_the_case_discharged() -> None:
    update = domain.follow_up(stored(), follow_up(hospital().discharged("ref-1", NOW)), now=NOW)
    assert (update.open, update.discharged) == (True, True)
    assert isinstance(update.event, CaseDischarged)
    assert update.event.discharged_at == NOW


def test_a_cancellation_closes_the_case() -> None:
    event = follow_up(hospital().cancelled("ref-1", "declined-by-patient"))
    update = domain.follow_up(stored(), event, now=NOW)
    assert (update.open, update.discharged) == (False, False)
    assert isinstance(update.event, CaseCancelled)
    assert update.event.reason_code == "declined-by-patient"


# --- what goes on care.cases --------------------------------------------------------------


def test_the_receipt_carries_no_personal_data() -> None:
    data = submission()
    sub = hv1.ReferralSubmitted.model_validate(data)
    text = domain.received("case-1", sub, NOW, "70-74").model_dump_json()
    patient = data["patient"]
    for personal in (
        patient["name"],
        patient["phone"],
        patient["birth_date"],
        patient["address"]["street"],
        str(patient["monthly_household_income_krw"]),
        data["social_worker"]["name"],
        data["care_precautions"],
    ):
        assert personal not in text


def test_the_acceptance_carries_the_triage() -> None:
    sub = hv1.ReferralSubmitted.model_validate(submission())
    triage = domain.triage(sub, policies=POLICIES, registry=REGISTRY)
    assert isinstance(triage, domain.Triage)
    accepted = domain.accepted("case-1", sub, triage, "person-1", NOW)
    assert (accepted.person_id, accepted.centre_id, accepted.fee_support) == (
        "person-1",
        triage.centre_id,
        triage.fee_support,
    )
    assert accepted.review_deadline == triage.review_deadline
