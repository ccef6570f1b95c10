"""services/referral/domain.py: default quantities, planning under the cap, plan lines."""

from __future__ import annotations

import pytest

from contracts.referral import PlanLine
from services.lib.policy import SERVICE_CODES, load_policies
from services.referral.domain import default_request, plan, plan_lines

POLICY_2025 = load_policies().for_year(2025)

# The documented defaults (services/referral/domain.py): a modest first week, in each unit.
DOCUMENTED_DEFAULTS = {
    "temporary_home_care": 8,  # 30-minute units: 4 hours
    "short_term_facility": 3,  # days
    "accompaniment": 2,  # hours
    "home_repair": 2,  # hours
    "residential_convenience": 2,  # hours
    "meal_delivery": 10,  # meals
}


def test_documented_defaults_cover_every_service_code() -> None:
    assert set(DOCUMENTED_DEFAULTS) == set(SERVICE_CODES)


@pytest.mark.parametrize("code", SERVICE_CODES)
def test_default_request_gives_the_documented_quantity_for_each_service(code: str) -> None:
    assert default_request([code]) == [(code, DOCUMENTED_DEFAULTS[code])]


def test_default_request_keeps_the_requested_order() -> None:
    codes = ["meal_delivery", "accompaniment", "temporary_home_care"]
    assert default_request(codes) == [(c, DOCUMENTED_DEFAULTS[c]) for c in codes]


def test_plan_with_full_support_and_the_cap_already_used_is_nothing_fits() -> None:
    fit = plan(
        POLICY_2025,
        requested=default_request(["meal_delivery"]),
        fee_support="full",
        already_used_krw=POLICY_2025.annual_cap_krw,
    )
    assert fit.nothing_fits is True
    assert fit.lines == ()
    assert plan_lines(fit) == []


def test_plan_lines_carry_service_quantity_unit_and_cost() -> None:
    fit = plan(
        POLICY_2025,
        requested=default_request(["temporary_home_care", "meal_delivery"]),
        fee_support="full",
        already_used_krw=0,
    )
    assert plan_lines(fit) == [
        PlanLine(service="temporary_home_care", quantity=8, unit="per_30_min", cost_krw=8 * 16_940),
        PlanLine(service="meal_delivery", quantity=10, unit="per_meal", cost_krw=10 * 10_100),
    ]
