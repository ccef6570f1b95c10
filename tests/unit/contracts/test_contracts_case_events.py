"""Internal events on `care.cases`: each type registered once, decodable, tolerant of
fields a newer producer added."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import pytest
from pydantic import ValidationError

from contracts import docs
from contracts.cases import (
    CASE_EVENT_TYPES,
    CaseEvent,
    UnknownEventType,
    decode_case_event,
    register,
)
from contracts.catalog import all_messages
from contracts.escalations import TaskOverdue
from contracts.topics import CASES

COMMON: dict[str, Any] = {
    "case_id": "case-0001",
    "hospital_id": "police-hospital",
    "referral_id": "REF-1",
    "occurred_at": "2025-03-01T10:00:00+09:00",
}
PLAN_LINE = {"service": "meal_delivery", "quantity": 10, "unit": "meal", "cost_krw": 80_000}
PROVIDER = {"id": "demo-lunchbox", "name": {"ko": "가상 든든도시락", "en": "Fictional Lunchbox"}}
ORDERED_LINE = {**PLAN_LINE, "line": 1, "provider": PROVIDER, "planned_start": "2025-03-07"}
DELIVERED_LINE = {
    **ORDERED_LINE,
    "cost_krw": 64_000,
    "started_on": "2025-03-07",
    "ended_on": "2025-03-14",
    "delivered_units": 8,
    "outcome": "partly-delivered",
    "end_reason": "moved-to-facility",
    "district_paid_krw": 64_000,
    "self_paid_krw": 0,
}

# One valid data object per event type; a new type needs a sample here.
SAMPLES: dict[str, dict[str, Any]] = {
    "carelink.case.received.v1": {
        "submitted_at": "2025-03-01T09:30:00+09:00",
        "age_band": "75-79",
        "district": "Songpa-gu",
        "dong": "Jamsil-dong",
        "requested_services": ["temporary_home_care"],
        "admission_date": "2025-02-20",
        "expected_discharge_date": "2025-03-06",
        "priority": "routine",
        "mobility": "assisted",
        "registered_disability": False,
        "lives_alone": True,
        "has_family_caregiver": False,
        "uses_public_care": False,
        "do_not_contact": False,
    },
    "carelink.case.accepted.v1": {
        "person_id": "person-0001",
        "policy_year": 2025,
        "fee_support": "full",
        "centre_id": "songpa-care-sos",
        "district": "Songpa-gu",
        "priority": "urgent",
        "review_deadline": "2025-03-02T10:00:00+09:00",
        "expected_discharge_date": "2025-03-06",
        "requested_services": ["meal_delivery", "accompaniment"],
    },
    "carelink.case.rejected.v1": {
        "reason_code": "invalid-referral",
        "reason": "the submission does not match the contract",
        "errors": [{"field": "patient.household_size", "message": "too large", "type": "le"}],
    },
    "carelink.case.submission-refused.v1": {
        "reason_code": "conflicting-duplicate",
        "reason": "this referral_id was already used for a different submission",
        "errors": [],
    },
    "carelink.case.status-requested.v1": {},
    "carelink.case.linked.v1": {},
    "carelink.case.link-declined.v1": {},
    "carelink.case.readmitted.v1": {"expected_discharge_date": "2025-03-12"},
    "carelink.case.review-completed.v1": {
        "decision": "ineligible",
        "reason_code": "can-manage-alone",
    },
    "carelink.case.waitlisted.v1": {"retry_at": "2025-03-09T10:00:00+09:00"},
    "carelink.case.failed.v1": {
        "reason_code": "cap-exhausted",
        "annual_cap_krw": 1_800_000,
        "cap_remaining_krw": 0,
        "delivered": [],
    },
    "carelink.case.on-hold.v1": {"reason_code": "readmitted"},
    "carelink.case.resumed.v1": {"kind": "post-discharge"},
    "carelink.case.discharge-date-changed.v1": {"expected_discharge_date": "2025-03-10"},
    "carelink.case.discharged.v1": {"discharged_at": "2025-03-10T11:00:00+09:00"},
    "carelink.case.cancelled.v1": {"reason_code": "consent-withdrawn", "cancelled_by": "centre"},
    "carelink.case.fee-support-corrected.v1": {"fee_support": "full", "previous": "self-pay"},
    "carelink.case.personal-data-destroyed.v1": {"reason": "consent-withdrawn"},
    "carelink.case.care-plan-set.v1": {
        "lines": [PLAN_LINE],
        "total_krw": 80_000,
        "publicly_paid_krw": 80_000,
        "self_paid_krw": 0,
        "partial": False,
        "paid_by": "district",
        "annual_cap_krw": 1_800_000,
        "cap_remaining_krw": 1_720_000,
    },
    "carelink.case.services-linked.v1": {},
    "carelink.case.services-ordered.v1": {"lines": [ORDERED_LINE]},
    "carelink.case.services-started.v1": {
        "line": 1,
        "service": "meal_delivery",
        "provider": PROVIDER,
        "started_on": "2025-03-07",
    },
    "carelink.case.services-delivered.v1": {
        "lines": [DELIVERED_LINE],
        "total_krw": 64_000,
        "publicly_paid_krw": 64_000,
        "self_paid_krw": 0,
        "annual_cap_krw": 1_800_000,
        "cap_remaining_krw": 1_736_000,
    },
    "carelink.case.visit-scheduled.v1": {
        "kind": "pre-discharge",
        "window_start": "2025-03-04T10:00:00+09:00",
        "window_end": "2025-03-04T12:00:00+09:00",
    },
    "carelink.case.visit-done.v1": {
        "kind": "post-discharge",
        "outcome": "done",
        "precautions_acknowledged": True,
        "findings": ["home-safety-checked"],
    },
    "carelink.case.closed.v1": {
        "delivered": [DELIVERED_LINE],
        "total_krw": 80_000,
        "publicly_paid_krw": 80_000,
        "self_paid_krw": 0,
        "annual_cap_krw": 1_800_000,
        "cap_remaining_krw": 1_720_000,
        "precautions_acknowledged": True,
    },
}


def sample(ce_type: str) -> dict[str, Any]:
    return {**COMMON, **SAMPLES[ce_type]}


def all_subclasses(cls: type[CaseEvent]) -> list[type[CaseEvent]]:
    found: list[type[CaseEvent]] = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(all_subclasses(sub))
    return found


def test_every_case_event_type_is_registered_once() -> None:
    # Only the producers' modules: a test may define throwaway subclasses.
    models = [
        m
        for m in all_subclasses(CaseEvent)
        if "ce_type" in vars(m) and m.__module__.startswith("contracts.")
    ]
    ce_types = [m.ce_type for m in models]

    assert len(ce_types) == len(set(ce_types)), "two models share a ce_type"
    assert {m.ce_type: m for m in models} == CASE_EVENT_TYPES
    on_cases = [m.ce_type for m in all_messages() if m.channel == CASES]
    assert sorted(on_cases) == sorted(CASE_EVENT_TYPES)


def test_registering_a_ce_type_twice_raises() -> None:
    existing = next(iter(CASE_EVENT_TYPES.values()))

    class Duplicate(CaseEvent):
        ce_type: ClassVar[str] = existing.ce_type
        producer: ClassVar[str] = "test"

    with pytest.raises(ValueError, match="registered twice"):
        register(Duplicate)
    assert CASE_EVENT_TYPES[existing.ce_type] is existing


def test_every_registered_type_has_a_sample() -> None:
    assert sorted(SAMPLES) == sorted(CASE_EVENT_TYPES)


@pytest.mark.parametrize("ce_type", sorted(CASE_EVENT_TYPES))
def test_decode_case_event_round_trips_a_sample(ce_type: str) -> None:
    model = CASE_EVENT_TYPES[ce_type]
    event = model.model_validate(sample(ce_type))

    decoded = decode_case_event(ce_type, event.model_dump_json().encode())

    assert type(decoded) is model
    assert decoded == event
    assert decoded.model_dump(mode="json") == json.loads(json.dumps(sample(ce_type)))


def test_decode_case_event_raises_unknown_event_type_for_unknown_types() -> None:
    with pytest.raises(UnknownEventType, match=r"carelink\.case\.nonsense\.v1"):
        decode_case_event("carelink.case.nonsense.v1", b"{}")


def test_decode_case_event_raises_validation_error_for_bad_data() -> None:
    with pytest.raises(ValidationError):
        decode_case_event("carelink.case.discharged.v1", json.dumps(COMMON).encode())


# A field a newer producer added; the previous version of every reader must cope.
ADDED = {"added_in_a_later_version": {"any": ["json", 1]}}


@pytest.mark.parametrize("ce_type", sorted(CASE_EVENT_TYPES))
def test_internal_readers_ignore_a_field_a_newer_producer_added(ce_type: str) -> None:
    # Services are deployed one at a time: an added optional field must not break the
    # consumers still running the previous version (design notes, "Contracts").
    model = CASE_EVENT_TYPES[ce_type]
    data = {**sample(ce_type), **ADDED}

    decoded = decode_case_event(ce_type, json.dumps(data).encode())

    assert decoded == model.model_validate(sample(ce_type))
    # Producers still emit exactly the model's fields: the unknown one is not passed on.
    assert set(json.loads(decoded.model_dump_json())) == set(model.model_fields)


@pytest.mark.parametrize(
    ("ce_type", "path"),
    [
        ("carelink.case.closed.v1", "delivered"),
        ("carelink.case.care-plan-set.v1", "lines"),
        ("carelink.case.services-ordered.v1", "lines"),
        ("carelink.case.services-delivered.v1", "lines"),
        ("carelink.case.rejected.v1", "errors"),
    ],
)
def test_nested_internal_models_ignore_an_added_field(ce_type: str, path: str) -> None:
    data = sample(ce_type)
    data[path] = [{**item, **ADDED} for item in data[path]]

    decoded = decode_case_event(ce_type, json.dumps(data).encode())

    assert decoded == CASE_EVENT_TYPES[ce_type].model_validate(sample(ce_type))
    assert "added_in_a_later_version" not in decoded.model_dump_json()


@pytest.mark.parametrize("ce_type", sorted(CASE_EVENT_TYPES))
def test_internal_readers_still_refuse_a_missing_or_wrong_field(ce_type: str) -> None:
    # Tolerant of additions only: what the reader needs is still checked.
    with pytest.raises(ValidationError):
        decode_case_event(ce_type, json.dumps({**sample(ce_type), "case_id": None}).encode())


def test_task_overdue_readers_ignore_an_added_field() -> None:
    data = {
        "task_id": 7,
        "service": "referral",
        "case_id": "case-0001",
        "kind": "review",
        "centre_id": "songpa-care-sos",
        "priority": "urgent",
        "due_at": "2025-03-02T10:00:00+09:00",
        "status": "open",
        "detected_at": "2025-03-02T10:01:00+09:00",
    }

    decoded = TaskOverdue.model_validate_json(json.dumps({**data, **ADDED}))

    assert decoded == TaskOverdue.model_validate(data)
    assert set(json.loads(decoded.model_dump_json())) == set(data)


def test_no_generated_schema_says_added_fields_are_refused() -> None:
    # What the schemas promise every reader, hospitals included: an added optional field
    # is tolerated (the hospital contract allows adding one; internal readers ignore them).
    # "additionalProperties": false would document the opposite.
    for path, text in docs.render().items():
        if path.endswith(".json"):
            assert '"additionalProperties": false' not in text, path
