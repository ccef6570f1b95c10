"""The pure rules: age, eligibility, median income, fee support, prices, annual cap."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from services.lib.policy import (
    FeeRule,
    Policy,
    PolicyBook,
    PolicyIncomplete,
    RuleError,
    ServiceLine,
    age_band,
    age_on,
    check_eligibility,
    fee_support,
    fit_to_cap,
    load_policies,
    median_income,
    price_plan,
)
from services.lib.policy.policy import DEFAULT_POLICY_DIR

# Standard median income 2025 for households 1..10; 7..10 derived by hand:
# 8,064,805 + k * (8,064,805 - 7,108,192 = 956,613).
MEDIAN_2025 = {
    1: 2_392_013,
    2: 3_932_658,
    3: 5_025_353,
    4: 6_097_773,
    5: 7_108_192,
    6: 8_064_805,
    7: 9_021_418,
    8: 9_978_031,
    9: 10_934_644,
    10: 11_891_257,
}


@pytest.fixture(scope="module")
def book() -> PolicyBook:
    return load_policies(DEFAULT_POLICY_DIR)


@pytest.fixture(scope="module")
def p2026(book: PolicyBook) -> Policy:
    return book.for_year(2026)


@pytest.fixture(scope="module")
def p2025(book: PolicyBook) -> Policy:
    return book.for_year(2025)


def _with_share(policy: Policy, share: str) -> Policy:
    return policy.model_copy(update={"fee": FeeRule(self_pay_share=Decimal(share))})


# --- age ------------------------------------------------------------------


def test_age_on_birthday_and_day_before() -> None:
    birth = date(1975, 3, 10)
    assert age_on(birth, date(2025, 3, 10)) == 50
    assert age_on(birth, date(2025, 3, 9)) == 49
    assert age_on(birth, date(2025, 12, 31)) == 50
    assert age_on(birth, date(1975, 3, 10)) == 0


def test_age_on_29_february_birth() -> None:
    birth = date(1976, 2, 29)
    assert age_on(birth, date(2026, 2, 28)) == 49  # common year: not yet
    assert age_on(birth, date(2026, 3, 1)) == 50  # common year: 1 March
    assert age_on(birth, date(2024, 2, 28)) == 47
    assert age_on(birth, date(2024, 2, 29)) == 48  # leap year: on the day


def test_age_on_refuses_bad_input() -> None:
    with pytest.raises(RuleError, match="before"):
        age_on(date(2000, 1, 2), date(2000, 1, 1))
    with pytest.raises(RuleError, match="datetime"):
        age_on(date(2000, 1, 1), datetime(2025, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    ("age", "band"),
    [
        (0, "0-5"),
        (5, "0-5"),
        (6, "6-9"),
        (9, "6-9"),
        (10, "10-14"),
        (49, "45-49"),
        (50, "50-54"),
        (54, "50-54"),
        (65, "65-69"),
        (69, "65-69"),
        (84, "80-84"),
        (85, "85+"),
        (103, "85+"),
    ],
)
def test_age_band(age: int, band: str) -> None:
    assert age_band(age) == band


def test_age_band_refuses_negative() -> None:
    with pytest.raises(RuleError):
        age_band(-1)


# --- eligibility ----------------------------------------------------------


def test_exactly_50_on_the_submission_date_is_eligible(p2026: Policy) -> None:
    submitted = date(2026, 4, 2)
    age = age_on(date(1976, 4, 2), submitted)
    assert age == 50
    assert (
        check_eligibility(p2026, age=age, registered_disability=False, district="Songpa-gu") is None
    )


def test_one_day_before_the_50th_birthday_is_not(p2026: Policy) -> None:
    age = age_on(date(1976, 4, 3), date(2026, 4, 2))
    refusal = check_eligibility(p2026, age=age, registered_disability=False, district="Songpa-gu")
    assert refusal is not None
    assert refusal.reason_code == "ineligible-age"
    assert "49" not in refusal.reason  # no personal data in the reason


def test_disabled_six_year_old_is_eligible(p2026: Policy) -> None:
    age = age_on(date(2020, 1, 1), date(2026, 1, 1))
    assert age == 6
    assert check_eligibility(p2026, age=age, registered_disability=True, district="Mapo-gu") is None


@pytest.mark.parametrize(
    ("age", "disabled"),
    [(49, False), (5, True), (6, False), (0, True)],
)
def test_too_young(p2026: Policy, age: int, disabled: bool) -> None:
    refusal = check_eligibility(p2026, age=age, registered_disability=disabled, district="Jung-gu")
    assert refusal is not None
    assert refusal.reason_code == "ineligible-age"


@pytest.mark.parametrize(("age", "disabled"), [(50, False), (65, False), (92, False), (30, True)])
def test_old_enough(p2026: Policy, age: int, disabled: bool) -> None:
    assert (
        check_eligibility(p2026, age=age, registered_disability=disabled, district="Jung-gu")
        is None
    )


@pytest.mark.parametrize("district", ["Suwon-si", "Seongnam-si", "songpa-gu", ""])
def test_outside_service_area(p2026: Policy, district: str) -> None:
    refusal = check_eligibility(p2026, age=70, registered_disability=False, district=district)
    assert refusal is not None
    assert refusal.reason_code == "outside-service-area"


def test_every_served_district_is_eligible(p2026: Policy) -> None:
    for district in p2026.served_districts:
        assert (
            check_eligibility(p2026, age=50, registered_disability=False, district=district) is None
        )


def test_age_is_checked_before_area(p2026: Policy) -> None:
    refusal = check_eligibility(p2026, age=30, registered_disability=False, district="Suwon-si")
    assert refusal is not None
    assert refusal.reason_code == "ineligible-age"


# --- median income and fee support ----------------------------------------


def test_median_income_2025_including_derived_sizes(p2025: Policy) -> None:
    assert {n: median_income(p2025, n) for n in range(1, 11)} == MEDIAN_2025


def test_median_income_2026_from_the_notice_including_derived_sizes(p2026: Policy) -> None:
    assert median_income(p2026, 1) == 2_564_238
    assert median_income(p2026, 4) == 6_494_738
    assert median_income(p2026, 6) == 8_555_952
    # 7+ persons: the 6-person row plus (6-person - 5-person) per extra person.
    assert median_income(p2026, 8) == 8_555_952 + 2 * (8_555_952 - 7_556_719)


@pytest.mark.parametrize("size", [0, 11, -1])
def test_median_income_refuses_sizes_outside_1_to_10(p2025: Policy, size: int) -> None:
    with pytest.raises(RuleError, match=r"1\.\.10"):
        median_income(p2025, size)


@pytest.mark.parametrize("size", range(1, 11))
def test_fee_support_boundary_2025(p2025: Policy, size: int) -> None:
    median = MEDIAN_2025[size]
    assert fee_support(p2025, household_size=size, monthly_income=median) == "full"
    assert fee_support(p2025, household_size=size, monthly_income=median + 1) == "self-pay"
    assert fee_support(p2025, household_size=size, monthly_income=0) == "full"


@pytest.mark.parametrize("year", [2022, 2023, 2024, 2025, 2026])
@pytest.mark.parametrize("size", range(1, 11))
def test_fee_support_boundary_every_year(book: PolicyBook, year: int, size: int) -> None:
    policy = book.for_year(year)
    median = median_income(policy, size)
    assert fee_support(policy, household_size=size, monthly_income=median) == "full"
    assert fee_support(policy, household_size=size, monthly_income=median + 1) == "self-pay"


def test_fee_support_threshold_is_a_setting(p2025: Policy) -> None:
    generous = p2025.model_copy(update={"fee": FeeRule(full_support_max_median_pct=150)})
    # 150% of 2,392,013 = 3,588,019.5
    assert fee_support(generous, household_size=1, monthly_income=3_588_019) == "full"
    assert fee_support(generous, household_size=1, monthly_income=3_588_020) == "self-pay"


def test_fee_support_refuses_negative_income(p2025: Policy) -> None:
    with pytest.raises(RuleError):
        fee_support(p2025, household_size=1, monthly_income=-1)


# --- prices ---------------------------------------------------------------


def test_price_plan_2026(p2026: Policy) -> None:
    plan = price_plan(
        p2026,
        [
            ("temporary_home_care", 8),
            ("short_term_facility", 14),
            ServiceLine("meal_delivery", 10),
            ("accompaniment", 3),
        ],
    )
    assert [(c.service_code, c.unit, c.cost_krw) for c in plan.lines] == [
        ("temporary_home_care", "per_30_min", 139_600),
        ("short_term_facility", "per_day", 1_036_840),
        ("meal_delivery", "per_meal", 104_000),
        ("accompaniment", "per_hour", 50_400),
    ]
    assert plan.total_krw == 1_330_840


def test_price_plan_2025_prices(p2025: Policy) -> None:
    plan = price_plan(p2025, [("home_repair", 2), ("residential_convenience", 1)])
    assert plan.total_krw == 3 * 16_300


def test_short_term_stay_over_14_days(p2026: Policy) -> None:
    with pytest.raises(RuleError, match="15 days exceeds the maximum of 14 days per stay"):
        price_plan(p2026, [("short_term_facility", 15)])
    # Two separate stays of 14 days are two lines.
    plan = price_plan(p2026, [("short_term_facility", 14), ("short_term_facility", 14)])
    assert plan.total_krw == 2 * 14 * 74_060


@pytest.mark.parametrize(
    "line",
    [("massage", 1), ("meal_delivery", 0), ("meal_delivery", -2), ("meal_delivery", True)],
)
def test_price_plan_refuses_bad_lines(p2026: Policy, line: tuple[str, int]) -> None:
    with pytest.raises(RuleError):
        price_plan(p2026, [line])


# --- annual cap -----------------------------------------------------------


def test_full_support_within_cap(p2026: Policy) -> None:
    fit = fit_to_cap(
        p2026,
        requested_lines=[("short_term_facility", 14), ("temporary_home_care", 40)],
        already_used_this_year=0,
        fee_support="full",
    )
    assert not fit.partial
    assert not fit.nothing_fits
    assert fit.cut == ()
    assert [line.quantity for line in fit.lines] == [14, 40]
    assert fit.district_total_krw == 1_036_840 + 698_000
    assert fit.resident_total_krw == 0
    assert fit.paid_by == "district"
    assert fit.cap_remaining_after_krw == 1_800_000 - 1_734_840
    assert all(line.paid_by == "district" for line in fit.lines)


def test_cap_exhaustion_across_two_cases_in_a_year(p2026: Policy) -> None:
    first = fit_to_cap(
        p2026,
        requested_lines=[("short_term_facility", 14), ("temporary_home_care", 40)],
        already_used_this_year=0,
        fee_support="full",
    )
    used = first.district_total_krw  # 1,734,840 of 1,800,000

    # Second case of the same person: 65,160 KRW left -> 3 half-hours of home care.
    second = fit_to_cap(
        p2026,
        requested_lines=[("temporary_home_care", 10), ("meal_delivery", 10)],
        already_used_this_year=used,
        fee_support="full",
    )
    assert second.cap_remaining_before_krw == 65_160
    assert second.partial
    assert not second.nothing_fits
    assert [(line.service_code, line.quantity) for line in second.lines] == [
        ("temporary_home_care", 3)
    ]
    assert second.lines[0].requested_quantity == 10
    assert second.district_total_krw == 3 * 17_450
    # The reduced line and every later line are cut (greedy in request order).
    assert second.cut == (("temporary_home_care", 7), ("meal_delivery", 10))
    assert second.cap_remaining_after_krw == 65_160 - 52_350
    used += second.district_total_krw

    # Third request: 12,810 KRW left, less than a half-hour of home care -> nothing fits.
    third = fit_to_cap(
        p2026,
        requested_lines=[("temporary_home_care", 2), ("meal_delivery", 1)],
        already_used_this_year=used,
        fee_support="full",
    )
    assert third.nothing_fits
    assert not third.partial
    assert third.lines == ()
    assert third.district_total_krw == 0
    assert third.cut == (("temporary_home_care", 2), ("meal_delivery", 1))

    # ... but a meal (10,400) still fits when it comes first.
    meal = fit_to_cap(
        p2026,
        requested_lines=[("meal_delivery", 5)],
        already_used_this_year=used,
        fee_support="full",
    )
    assert [line.quantity for line in meal.lines] == [1]
    assert meal.partial


def test_cap_fully_used(p2026: Policy) -> None:
    for used in (1_800_000, 2_500_000):
        fit = fit_to_cap(
            p2026,
            requested_lines=[("meal_delivery", 1)],
            already_used_this_year=used,
            fee_support="full",
        )
        assert fit.nothing_fits
        assert fit.cap_remaining_before_krw == 0


def test_cap_of_the_year_2025_is_1_8_million(p2025: Policy) -> None:
    # 25 days of short-term stays (14 + 11) = 1,799,250 fits 1,800,000 exactly with 750 left.
    fit = fit_to_cap(
        p2025,
        requested_lines=[("short_term_facility", 14), ("short_term_facility", 11)],
        already_used_this_year=0,
        fee_support="full",
    )
    assert not fit.partial
    assert fit.district_total_krw == 25 * 71_970
    assert fit.cap_remaining_after_krw == 750


def test_self_pay_full_share_resident_pays_everything(p2026: Policy) -> None:
    fit = fit_to_cap(
        p2026,
        requested_lines=[("short_term_facility", 14), ("meal_delivery", 30)],
        already_used_this_year=1_800_000,  # the cap does not limit what the resident pays
        fee_support="self-pay",
    )
    assert not fit.partial
    assert not fit.nothing_fits
    assert fit.district_total_krw == 0
    assert fit.resident_total_krw == 1_036_840 + 312_000
    assert fit.paid_by == "resident"
    assert all(line.paid_by == "resident" for line in fit.lines)


def test_self_pay_share_is_a_setting(p2026: Policy) -> None:
    policy = _with_share(p2026, "0.3")
    fit = fit_to_cap(
        policy,
        requested_lines=[("accompaniment", 3)],  # 50,400
        already_used_this_year=0,
        fee_support="self-pay",
    )
    assert fit.district_total_krw == 35_280  # 70 %
    assert fit.resident_total_krw == 15_120  # 30 %
    assert fit.paid_by == "shared"
    # The share does not apply to full-support households.
    full = fit_to_cap(
        policy,
        requested_lines=[("accompaniment", 3)],
        already_used_this_year=0,
        fee_support="full",
    )
    assert full.resident_total_krw == 0


def test_self_pay_district_part_counts_against_cap(p2026: Policy) -> None:
    policy = _with_share(p2026, "0.5")
    fit = fit_to_cap(
        policy,
        requested_lines=[("short_term_facility", 14)],  # district part 37,030 a day
        already_used_this_year=1_800_000 - 100_000,
        fee_support="self-pay",
    )
    assert [line.quantity for line in fit.lines] == [2]
    assert fit.district_total_krw == 74_060
    assert fit.resident_total_krw == 74_060
    assert fit.partial


def test_per_service_cap_when_configured(p2026: Policy) -> None:
    policy = p2026.model_copy(update={"per_service_caps_krw": {"meal_delivery": 50_000}})
    fit = fit_to_cap(
        policy,
        requested_lines=[("meal_delivery", 10)],
        already_used_this_year=20_000,
        fee_support="full",
        already_used_by_service={"meal_delivery": 20_000},
    )
    assert [line.quantity for line in fit.lines] == [2]  # 30,000 left for meals
    assert fit.partial


def test_unknown_per_service_caps_make_the_policy_incomplete(book: PolicyBook) -> None:
    p2024 = book.for_year(2024)
    priced = p2024.model_copy(update={"services": book.for_year(2025).services})
    with pytest.raises(PolicyIncomplete, match="per_service_caps_krw"):
        fit_to_cap(
            priced,
            requested_lines=[("meal_delivery", 1)],
            already_used_this_year=0,
            fee_support="full",
        )
    with pytest.raises(PolicyIncomplete, match=r"services\.meal_delivery\.price_krw"):
        fit_to_cap(
            p2024,
            requested_lines=[("meal_delivery", 1)],
            already_used_this_year=0,
            fee_support="full",
        )


def test_fit_to_cap_refuses_bad_input(p2026: Policy) -> None:
    with pytest.raises(RuleError, match="empty"):
        fit_to_cap(p2026, requested_lines=[], already_used_this_year=0, fee_support="full")
    with pytest.raises(RuleError, match="negative"):
        fit_to_cap(
            p2026,
            requested_lines=[("meal_delivery", 1)],
            already_used_this_year=-1,
            fee_support="full",
        )
    with pytest.raises(RuleError, match="14"):
        fit_to_cap(
            p2026,
            requested_lines=[("short_term_facility", 20)],
            already_used_this_year=0,
            fee_support="full",
        )
