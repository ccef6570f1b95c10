"""Do-not-contact on visit tasks (services/console/contact.py, issue 10): the social
worker first, the patient's phone not at all; other tasks and other cases unchanged."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from faker import Faker

from services.console.contact import THROUGH_SOCIAL_WORKER, for_task
from services.console.schemas import PersonalDetails

fake = Faker("ko_KR")
Faker.seed(10)


def referral(referral_id: str, *, do_not_contact: bool) -> dict[str, Any]:
    return {
        "hospital_id": "police-hospital",
        "referral_id": referral_id,
        "outcome": "accepted",
        "received_at": datetime(2026, 12, 1, tzinfo=UTC),
        "patient": {"name": fake.name(), "phone": fake.phone_number(), "address": {}},
        "social_worker": {"name": fake.name(), "phone": fake.phone_number()},
        "consent": {"given": True},
        "do_not_contact": do_not_contact,
    }


def personal(*referrals: dict[str, Any]) -> PersonalDetails:
    return PersonalDetails.model_validate({"case_id": "case-1", "referrals": list(referrals)})


@pytest.mark.parametrize("kind", ["pre-discharge-visit", "post-discharge-visit"])
def test_a_visit_of_a_do_not_contact_case_goes_through_the_social_worker(kind: str) -> None:
    details = personal(referral("r-1", do_not_contact=True), referral("r-2", do_not_contact=False))
    first_worker = details.referrals[0].social_worker

    shown, contact = for_task(kind, details)

    assert contact is not None
    assert contact.via == "social-worker"
    assert contact.instruction == THROUGH_SOCIAL_WORKER
    assert (contact.name, contact.phone, contact.referral_id) == (
        first_worker.name,
        first_worker.phone,
        "r-1",
    )
    assert shown is not None
    assert [r.patient.phone for r in shown.referrals] == [None, None]
    dumped = shown.model_dump_json()
    for r in details.referrals:
        assert r.patient.phone is not None
        assert r.patient.phone not in dumped
    # The rest of what intake said is kept.
    assert [r.patient.name for r in shown.referrals] == [r.patient.name for r in details.referrals]


def test_a_visit_of_an_ordinary_case_calls_the_patient() -> None:
    details = personal(referral("r-1", do_not_contact=False))
    shown, contact = for_task("pre-discharge-visit", details)
    assert shown == details
    assert contact is not None
    assert contact.via == "patient"


def test_a_review_shows_the_details_as_intake_gave_them() -> None:
    details = personal(referral("r-1", do_not_contact=True))
    assert for_task("review", details) == (details, None)


def test_no_personal_details_no_contact() -> None:
    assert for_task("post-discharge-visit", None) == (None, None)
