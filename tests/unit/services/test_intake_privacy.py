"""When a case's personal data is due for destruction (PIPA art. 21), pure rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.intake import destruction, privacy
from services.lib.policy import load_policies

POLICIES = load_policies()


def test_every_policy_year_sets_five_years_after_closure() -> None:
    assert {p.personal_data_retention_years for p in POLICIES.policies} == {5}


def test_a_case_is_due_five_years_after_it_closed_not_a_second_earlier() -> None:
    closed = datetime(2024, 3, 14, 1, 30, tzinfo=UTC)  # 10:30 in Seoul
    due = privacy.destruction_due_at(closed, POLICIES)
    assert due == closed.replace(year=2029)
    assert not privacy.is_due(closed, POLICIES, due - timedelta(seconds=1))
    assert privacy.is_due(closed, POLICIES, due)


def test_an_open_case_is_never_due() -> None:
    assert not privacy.is_due(None, POLICIES, datetime(2100, 1, 1, tzinfo=UTC))


def test_the_29th_of_february_becomes_the_28th() -> None:
    leap = datetime(2024, 2, 29, 12, tzinfo=UTC)
    assert privacy.add_years(leap, 5) == datetime(2029, 2, 28, 12, tzinfo=UTC)


def test_the_policy_in_force_on_the_seoul_closure_date_decides() -> None:
    # 2025-12-31 23:30 UTC is 1 January 2026 in Seoul: the 2026 policy's period applies.
    policies = POLICIES.model_copy(
        update={
            "policies": tuple(
                p.model_copy(update={"personal_data_retention_years": 7}) if p.year == 2026 else p
                for p in POLICIES.policies
            )
        }
    )
    closed = datetime(2025, 12, 31, 23, 30, tzinfo=UTC)
    assert privacy.retention_years(policies, datetime(2026, 1, 1).date()) == 7
    assert privacy.destruction_due_at(closed, policies) == datetime(
        2032, 12, 31, 23, 30, tzinfo=UTC
    )


def test_before_any_policy_the_longest_period_applies() -> None:
    assert privacy.retention_years(POLICIES, datetime(2001, 1, 1).date()) == 5


def test_only_a_withdrawal_of_consent_destroys_at_once() -> None:
    assert privacy.withdraws_consent("consent-withdrawn")
    for code in ("deceased", "transferred", "declined-by-patient", "cancelled-by-hospital"):
        assert not privacy.withdraws_consent(code)


def test_the_job_clears_exactly_the_fields_the_rules_name() -> None:
    assert tuple(destruction._CLEAR) == privacy.PERSONAL_FIELDS
