"""services/intake/domain.py: the automatic intake rules, on the real policy and registry files."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from faker import Faker
from pydantic import ValidationError

from contracts.hospital_v1 import ReferralSubmitted
from services.intake.domain import Refused, Triage, content_hash, field_errors, patient_key, triage
from services.lib.policy import PolicyBook, Registry, load_policies, load_registry
from services.tools.simulators.referrals import FakeHospital

POLICIES: PolicyBook = load_policies()
REGISTRY: Registry = load_registry()

# 2025-03-09T16:00Z is already 2025-03-10 in Seoul (UTC+9): the UTC date is one day behind.
SUBMITTED_AT = datetime(2025, 3, 9, 16, 0, tzinfo=UTC)
SEOUL_SUBMISSION_DATE = date(2025, 3, 10)
MEDIAN_2025_HOUSEHOLD_4 = 6_097_773  # domain.md, standard median income 2025, 4 persons


def submission(
    *, birth_date: date | None = None, seed: int = 7, **kwargs: Any
) -> ReferralSubmitted:
    """A contract-valid submission from the project's fake hospital (Faker ko_KR values)."""
    kwargs.setdefault("submitted_at", SUBMITTED_AT)
    data = FakeHospital("police-hospital", seed=seed).submission(**kwargs)
    if birth_date is not None:
        data["patient"]["birth_date"] = birth_date.isoformat()
    return ReferralSubmitted.model_validate(data)


def decide(sub: ReferralSubmitted) -> Refused | Triage:
    return triage(sub, policies=POLICIES, registry=REGISTRY)


def accepted(sub: ReferralSubmitted) -> Triage:
    result = decide(sub)
    assert isinstance(result, Triage), result
    return result


# --- triage: consent, age, area -------------------------------------------------------


def test_consent_not_given_is_refused_missing_consent() -> None:
    result = decide(submission(consent=False))
    assert isinstance(result, Refused)
    assert result.reason_code == "missing-consent"
    assert result.reason


def test_missing_consent_is_checked_before_age() -> None:
    # A 20-year-old is refused for age with consent, but for consent without it.
    too_young = date(2005, 1, 1)
    with_consent = decide(submission(consent=True, birth_date=too_young))
    without_consent = decide(submission(consent=False, birth_date=too_young))
    assert isinstance(with_consent, Refused)
    assert with_consent.reason_code == "ineligible-age"
    assert isinstance(without_consent, Refused)
    assert without_consent.reason_code == "missing-consent"


def test_age_exactly_50_on_the_seoul_submission_date_is_accepted() -> None:
    # Turns 50 on the Seoul date (2025-03-10); on the UTC date (2025-03-09) still 49.
    birth = SEOUL_SUBMISSION_DATE.replace(year=SEOUL_SUBMISSION_DATE.year - 50)
    result = accepted(submission(birth_date=birth))
    assert result.age_band == "50-54"


def test_one_day_before_the_50th_birthday_is_refused_ineligible_age() -> None:
    birth = SEOUL_SUBMISSION_DATE.replace(year=SEOUL_SUBMISSION_DATE.year - 50) + timedelta(days=1)
    result = decide(submission(birth_date=birth))
    assert isinstance(result, Refused)
    assert result.reason_code == "ineligible-age"
    assert birth.isoformat() not in result.reason


def test_registered_disabled_6_year_old_is_accepted() -> None:
    birth = SEOUL_SUBMISSION_DATE.replace(year=SEOUL_SUBMISSION_DATE.year - 6)
    result = accepted(submission(birth_date=birth, registered_disability=True))
    assert result.age_band == "6-9"


def test_registered_disabled_5_year_old_is_refused_ineligible_age() -> None:
    birth = SEOUL_SUBMISSION_DATE.replace(year=SEOUL_SUBMISSION_DATE.year - 6) + timedelta(days=1)
    result = decide(submission(birth_date=birth, registered_disability=True))
    assert isinstance(result, Refused)
    assert result.reason_code == "ineligible-age"


def test_district_suwon_si_is_refused_outside_service_area() -> None:
    result = decide(submission(district="Suwon-si"))
    assert isinstance(result, Refused)
    assert result.reason_code == "outside-service-area"


# --- triage: fee, deadline, centre, policy year ---------------------------------------


def test_income_exactly_the_2025_median_for_household_4_gets_full_support() -> None:
    result = accepted(submission(household_size=4, monthly_income=MEDIAN_2025_HOUSEHOLD_4))
    assert result.policy_year == 2025
    assert result.fee_support == "full"


def test_income_1_krw_above_the_2025_median_for_household_4_is_self_pay() -> None:
    result = accepted(submission(household_size=4, monthly_income=MEDIAN_2025_HOUSEHOLD_4 + 1))
    assert result.policy_year == 2025
    assert result.fee_support == "self-pay"


def test_urgent_review_deadline_is_24_hours_after_submitted_at() -> None:
    result = accepted(submission(priority="urgent"))
    assert result.review_deadline == SUBMITTED_AT + timedelta(hours=24)


def test_routine_review_deadline_is_72_business_hours_after_submitted_at() -> None:
    # Monday 01:00 in Seoul: three working days later, the same hour.
    result = accepted(submission(priority="routine"))
    assert result.review_deadline == SUBMITTED_AT + timedelta(hours=72)


def test_routine_review_deadline_skips_the_weekend_as_the_policy_says() -> None:
    # Friday 10:00 in Seoul (01:00 UTC): 72 business-day hours end Wednesday 10:00.
    friday = datetime(2025, 3, 14, 1, 0, tzinfo=UTC)
    result = accepted(submission(priority="routine", submitted_at=friday))
    assert result.review_deadline == datetime(2025, 3, 19, 1, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("district", "centre_id"),
    [
        ("Songpa-gu", "centre-songpa-gu"),
        ("Gangnam-gu", "centre-gangnam-gu"),
        ("Jongno-gu", "centre-jongno-gu"),
        ("Guro-gu", "centre-guro-gu"),
    ],
)
def test_centre_id_is_the_registry_centre_of_the_patients_district(
    district: str, centre_id: str
) -> None:
    centre = REGISTRY.centre_for(district)
    assert centre is not None
    assert centre.id == centre_id
    assert accepted(submission(district=district)).centre_id == centre_id


def test_policy_year_is_2026_when_submitted_at_is_already_2026_in_seoul() -> None:
    # 2025-12-31T15:30Z is 2026-01-01T00:30 in Seoul.
    result = accepted(submission(submitted_at=datetime(2025, 12, 31, 15, 30, tzinfo=UTC)))
    assert result.policy_year == 2026


def test_policy_year_is_2025_when_submitted_at_is_still_2025_in_seoul() -> None:
    # 2025-12-31T14:59Z is 2025-12-31T23:59 in Seoul.
    result = accepted(submission(submitted_at=datetime(2025, 12, 31, 14, 59, tzinfo=UTC)))
    assert result.policy_year == 2025


# --- content_hash ----------------------------------------------------------------------


def test_content_hash_is_equal_for_dicts_with_different_key_order() -> None:
    data = FakeHospital("police-hospital", seed=3).submission(submitted_at=SUBMITTED_AT)
    reordered = {key: data[key] for key in reversed(list(data))}
    reordered["patient"] = {k: data["patient"][k] for k in reversed(list(data["patient"]))}
    assert list(reordered) != list(data)
    assert content_hash(reordered) == content_hash(data)


def test_content_hash_differs_for_different_content() -> None:
    data = FakeHospital("police-hospital", seed=3).submission(submitted_at=SUBMITTED_AT)
    changed = {**data, "patient": {**data["patient"], "household_size": 2}}
    assert content_hash(changed) != content_hash(data)


# --- patient_key -----------------------------------------------------------------------


def _with_patient(name: str, birth_date: date) -> ReferralSubmitted:
    data = FakeHospital("police-hospital", seed=5).submission(submitted_at=SUBMITTED_AT)
    data["patient"]["name"] = name
    data["patient"]["birth_date"] = birth_date.isoformat()
    return ReferralSubmitted.model_validate(data)


def test_patient_key_is_equal_for_the_same_name_with_and_without_spaces() -> None:
    birth = date(1950, 4, 1)
    assert patient_key(_with_patient("홍 길동", birth)) == patient_key(
        _with_patient("홍길동", birth)
    )


def test_patient_key_is_equal_for_the_same_name_in_different_case_and_spacing() -> None:
    birth = date(1950, 4, 1)
    assert patient_key(_with_patient("Hong Gil Dong", birth)) == patient_key(
        _with_patient("hong gildong", birth)
    )


def test_patient_key_differs_for_a_different_birth_date() -> None:
    assert patient_key(_with_patient("홍길동", date(1950, 4, 1))) != patient_key(
        _with_patient("홍길동", date(1950, 4, 2))
    )


# --- field_errors ----------------------------------------------------------------------


def test_field_errors_list_the_field_paths_and_never_the_submitted_values() -> None:
    fake = Faker("ko_KR")
    fake.seed_instance(11)
    data = FakeHospital("police-hospital", seed=11).submission(submitted_at=SUBMITTED_AT)
    bad_values = {
        "patient.sex": fake.name(),
        "patient.birth_date": fake.name(),
        "social_worker.email": f"{fake.last_name()}@{fake.first_name()}",
        "patient.phone": fake.name() * 80,  # longer than 200 characters
    }
    data["patient"]["sex"] = bad_values["patient.sex"]
    data["patient"]["birth_date"] = bad_values["patient.birth_date"]
    data["social_worker"]["email"] = bad_values["social_worker.email"]
    data["patient"]["phone"] = bad_values["patient.phone"]
    with pytest.raises(ValidationError) as caught:
        ReferralSubmitted.model_validate(data)

    errors = field_errors(caught.value)

    assert {e.field for e in errors} == set(bad_values)
    rendered = " ".join(e.model_dump_json() for e in errors)
    for value in bad_values.values():
        assert value not in rendered
        for part in value.split("@"):
            assert part not in rendered
