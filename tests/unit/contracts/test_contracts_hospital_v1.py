"""The public hospital contract, v1: what a valid referral looks like and what is refused."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import pytest
from faker import Faker
from pydantic import ValidationError

from contracts.hospital_v1 import (
    ReferralSubmitted,
    ServiceCode,
    Status,
    StatusChanged,
)


@pytest.fixture
def fake() -> Faker:
    faker = Faker("ko_KR")
    faker.seed_instance(20250301)
    return faker


def submission(fake: Faker) -> dict[str, Any]:
    """A valid `carelink.referral.submitted.v1` data object as a hospital would send it."""
    admission = date(2025, 2, 20)
    return {
        "referral_id": f"REF-{fake.numerify('######')}",
        "hospital_id": "police-hospital",
        "submitted_at": "2025-03-01T09:30:00+09:00",
        "social_worker": {
            "name": fake.name(),
            "phone": fake.phone_number(),
            "email": fake.email(),
        },
        "patient": {
            "name": fake.name(),
            "birth_date": fake.date_of_birth(minimum_age=65, maximum_age=95).isoformat(),
            "sex": fake.random_element(["F", "M", "X"]),
            "phone": fake.phone_number(),
            "address": {
                "district": "Songpa-gu",
                "dong": fake.town(),
                "street": f"{fake.road_name()} {fake.building_number()}",
                "detail": fake.address_detail(),
            },
            "household_size": 1,
            "monthly_household_income_krw": 1_200_000,
            "registered_disability": False,
            "lives_alone": True,
            "has_family_caregiver": False,
            "uses_public_care": False,
        },
        "admission_date": admission.isoformat(),
        "expected_discharge_date": (admission + timedelta(days=14)).isoformat(),
        "mobility": "assisted",
        "requested_services": ["temporary_home_care", "meal_delivery"],
        "care_precautions": "낙상 위험",
        "consent": {
            "given": True,
            "obtained_at": "2025-02-28T15:00:00+09:00",
            "method": "written",
        },
        "priority": "routine",
    }


def parse(data: dict[str, Any]) -> ReferralSubmitted:
    # Parse from JSON text, as the record value arrives on the wire.
    return ReferralSubmitted.model_validate_json(json.dumps(data, ensure_ascii=False))


def error_locations(exc: pytest.ExceptionInfo[ValidationError]) -> list[tuple[str | int, ...]]:
    return [tuple(e["loc"]) for e in exc.value.errors()]


def test_valid_submission_parses(fake: Faker) -> None:
    data = submission(fake)

    parsed = parse(data)

    assert parsed.referral_id == data["referral_id"]
    assert parsed.patient.name == data["patient"]["name"]
    assert parsed.patient.address.dong == data["patient"]["address"]["dong"]
    assert parsed.requested_services == [
        ServiceCode.TEMPORARY_HOME_CARE,
        ServiceCode.MEAL_DELIVERY,
    ]
    assert parsed.submitted_at.utcoffset() == timedelta(hours=9)
    assert parsed.do_not_contact is False


@pytest.mark.parametrize("size", [0, 11])
def test_household_size_outside_1_to_10_fails(fake: Faker, size: int) -> None:
    data = submission(fake)
    data["patient"]["household_size"] = size

    with pytest.raises(ValidationError) as exc:
        parse(data)

    assert error_locations(exc) == [("patient", "household_size")]


@pytest.mark.parametrize("size", [1, 10])
def test_household_size_at_the_bounds_parses(fake: Faker, size: int) -> None:
    data = submission(fake)
    data["patient"]["household_size"] = size

    assert parse(data).patient.household_size == size


def test_negative_income_fails(fake: Faker) -> None:
    data = submission(fake)
    data["patient"]["monthly_household_income_krw"] = -1

    with pytest.raises(ValidationError) as exc:
        parse(data)

    assert error_locations(exc) == [("patient", "monthly_household_income_krw")]


def test_empty_requested_services_fails(fake: Faker) -> None:
    data = submission(fake)
    data["requested_services"] = []

    with pytest.raises(ValidationError) as exc:
        parse(data)

    assert error_locations(exc) == [("requested_services",)]


def test_unknown_service_code_fails(fake: Faker) -> None:
    data = submission(fake)
    data["requested_services"] = ["temporary_home_care", "massage"]

    with pytest.raises(ValidationError) as exc:
        parse(data)

    assert error_locations(exc) == [("requested_services", 1)]
    assert exc.value.errors()[0]["type"] == "enum"


def test_discharge_before_admission_fails(fake: Faker) -> None:
    data = submission(fake)
    data["admission_date"] = "2025-02-20"
    data["expected_discharge_date"] = "2025-02-19"

    with pytest.raises(ValidationError, match="must not be before admission_date") as caught:
        parse(data)
    assert [e["loc"] for e in caught.value.errors()] == [("expected_discharge_date",)]


def test_discharge_on_admission_day_parses(fake: Faker) -> None:
    data = submission(fake)
    data["expected_discharge_date"] = data["admission_date"]

    assert parse(data).expected_discharge_date == parse(data).admission_date


def test_naive_submitted_at_fails(fake: Faker) -> None:
    data = submission(fake)
    data["submitted_at"] = "2025-03-01T09:30:00"

    with pytest.raises(ValidationError) as exc:
        parse(data)

    assert error_locations(exc) == [("submitted_at",)]
    assert exc.value.errors()[0]["type"] == "timezone_aware"


def status_changed(status: Status, reason_code: str | None) -> dict[str, Any]:
    return {
        "referral_id": "REF-1",
        "case_id": "case-1",
        "sequence": 2,
        "status": status.value,
        "business_status": status.value,
        "reason_code": reason_code,
        "occurred_at": "2025-03-01T10:00:00+09:00",
    }


@pytest.mark.parametrize(
    "status", [Status.REJECTED, Status.ON_HOLD, Status.CANCELLED, Status.FAILED]
)
def test_status_changed_requires_reason_code_for_rejected_on_hold_cancelled_failed(
    status: Status,
) -> None:
    with pytest.raises(ValidationError, match="reason_code is required"):
        StatusChanged.model_validate(status_changed(status, None))
    with pytest.raises(ValidationError, match="reason_code is required"):
        StatusChanged.model_validate(status_changed(status, ""))

    parsed = StatusChanged.model_validate(status_changed(status, "some-reason"))
    assert parsed.reason_code == "some-reason"


def test_status_changed_received_needs_no_reason_code() -> None:
    parsed = StatusChanged.model_validate(status_changed(Status.RECEIVED, None))

    assert parsed.status is Status.RECEIVED
    assert parsed.reason_code is None
