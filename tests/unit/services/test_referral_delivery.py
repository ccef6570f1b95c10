"""services/referral/domain.py, ordering and delivery: providers and planned starts, the
delivery task's deadline, the line states (ordered → started → ended), the cost of what
was delivered and its split into district-paid and self-paid parts, every branch."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from fractions import Fraction

import pytest

from services.lib.policy import (
    SEOUL_TZ,
    PolicyIncomplete,
    load_policies,
    load_providers,
    load_registry,
)
from services.referral import domain
from services.referral.domain import (
    DeliveryConflict,
    DeliveryInvalid,
    Line,
    LineChoice,
    PlanProblem,
    Split,
)

BOOK = load_policies()
POLICY_2026 = BOOK.for_year(2026)
POLICY_2024 = BOOK.for_year(2024)
PROVIDERS = load_providers(load_registry())
TODAY = date(2026, 12, 3)
ORDERED_ON = date(2026, 12, 1)


def line(**changes: object) -> Line:
    base = Line(
        id=1,
        case_id="case-1",
        line_no=1,
        service="temporary_home_care",
        quantity=8,
        unit="per_30_min",
        provider_id="demo-homecare-southeast",
        planned_start=date(2026, 12, 2),
        ordered_on=ORDERED_ON,
        planned_district_krw=8 * 17_450,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def started(**changes: object) -> Line:
    return line(status="started", started_on=date(2026, 12, 2), **changes)


# ------------------------------------------------------------------ ordering


def test_the_suggested_provider_is_the_first_contracted() -> None:
    chosen = domain.choose(
        ["temporary_home_care", "meal_delivery"],
        [],
        providers=PROVIDERS,
        district="Songpa-gu",
        today=TODAY,
        expected_discharge=date(2026, 12, 10),
    )
    assert [(p.id, start) for p, start in chosen] == [
        ("demo-homecare-southeast", date(2026, 12, 10)),
        ("demo-lunchbox", date(2026, 12, 10)),
    ]


def test_a_coordinator_may_choose_another_contracted_provider_and_start() -> None:
    chosen = domain.choose(
        ["temporary_home_care"],
        [LineChoice("demo-songpa-neighbours", date(2026, 12, 5))],
        providers=PROVIDERS,
        district="Songpa-gu",
        today=TODAY,
        expected_discharge=None,
    )
    assert [(p.id, start) for p, start in chosen] == [("demo-songpa-neighbours", date(2026, 12, 5))]


@pytest.mark.parametrize(
    ("choice", "field", "words"),
    [
        (LineChoice("demo-nobody"), "lines.0.provider_id", "not a contracted provider"),
        (LineChoice("demo-gangnam-companions"), "lines.0.provider_id", "in Songpa-gu"),
        (LineChoice("demo-lunchbox"), "lines.0.provider_id", "temporary_home_care"),
        (LineChoice(planned_start=TODAY - timedelta(days=1)), "lines.0.planned_start", "past"),
        (LineChoice(planned_start=TODAY + timedelta(days=181)), "lines.0.planned_start", "ahead"),
    ],
)
def test_a_wrong_choice_names_the_line_and_field(
    choice: LineChoice, field: str, words: str
) -> None:
    with pytest.raises(PlanProblem) as info:
        domain.choose(
            ["temporary_home_care"],
            [choice],
            providers=PROVIDERS,
            district="Songpa-gu",
            today=TODAY,
            expected_discharge=None,
        )
    assert info.value.field == field
    assert words in str(info.value)


def test_a_district_nobody_covers_cannot_be_ordered() -> None:
    with pytest.raises(PlanProblem, match="no provider is contracted"):
        domain.choose(
            ["meal_delivery"],
            [],
            providers=PROVIDERS,
            district="Suwon-si",
            today=TODAY,
            expected_discharge=None,
        )


def test_the_default_start_is_the_discharge_or_today() -> None:
    assert domain.default_start(TODAY, date(2026, 12, 9)) == date(2026, 12, 9)
    assert domain.default_start(TODAY, date(2026, 11, 30)) == TODAY
    assert domain.default_start(TODAY, None) == TODAY


def test_ordered_lines_are_the_fitted_ones_with_their_choices() -> None:
    requested = [("short_term_facility", 14), ("meal_delivery", 10)]
    fit = domain.plan(
        POLICY_2026, requested=requested, fee_support="full", already_used_krw=1_000_000
    )
    chosen = domain.choose(
        [s for s, _ in requested],
        [LineChoice("demo-shortstay-west"), LineChoice()],
        providers=PROVIDERS,
        district="Songpa-gu",
        today=TODAY,
        expected_discharge=None,
    )
    ordered = domain.order(fit, chosen)
    # 800,000 left: 10 facility days fit (740,600), the meals are cut.
    assert [(o.line, o.service, o.quantity, o.provider.id) for o in ordered] == [
        (1, "short_term_facility", 10, "demo-shortstay-west")
    ]
    assert ordered[0].cost_krw == 10 * 74_060
    assert ordered[0].provider.name.ko.startswith("가상")


@pytest.mark.parametrize(
    ("unit", "quantity", "days"),
    [("per_day", 14, 14), ("per_meal", 10, 10), ("per_30_min", 8, 2), ("per_30_min", 9, 3),
     ("per_hour", 2, 1), ("per_hour", 5, 3), ("per_hour", 0, 1)],
)  # fmt: skip
def test_planned_days(unit: str, quantity: int, days: int) -> None:
    assert domain.planned_days(unit, quantity) == days


def test_the_delivery_task_is_due_a_week_after_the_last_planned_end() -> None:
    fit = domain.plan(
        POLICY_2026,
        requested=[("meal_delivery", 10), ("temporary_home_care", 8)],
        fee_support="full",
        already_used_krw=0,
    )
    chosen = domain.choose(
        ["meal_delivery", "temporary_home_care"],
        [LineChoice(planned_start=date(2026, 12, 4)), LineChoice(planned_start=date(2026, 12, 20))],
        providers=PROVIDERS,
        district="Songpa-gu",
        today=TODAY,
        expected_discharge=None,
    )
    ordered = domain.order(fit, chosen)
    rule = POLICY_2026.deadlines.delivery
    # meals end 12-14, home care 12-22: the period ends on 12-22 at midnight, Seoul time;
    # the 2026 policy gives the reports a week (168 clock hours): due on 12-29.
    assert domain.delivery_period_end(ordered) == datetime(2026, 12, 22, tzinfo=SEOUL_TZ)
    assert domain.delivery_due(ordered, rule, "routine") == datetime(2026, 12, 29, tzinfo=SEOUL_TZ)
    shorter = rule.model_copy(update={"routine": rule.routine.model_copy(update={"hours": 48})})
    assert domain.delivery_due(ordered, shorter, "routine") == datetime(
        2026, 12, 24, tzinfo=SEOUL_TZ
    )


# ------------------------------------------------------------------ line states


def test_a_line_starts_once_between_its_ordering_and_today() -> None:
    assert domain.start(line(), date(2026, 12, 2), today=TODAY) == started()
    assert domain.start(line(), ORDERED_ON, today=TODAY).started_on == ORDERED_ON
    assert domain.start(line(), TODAY, today=TODAY).status == "started"
    with pytest.raises(DeliveryInvalid) as info:
        domain.start(line(), TODAY + timedelta(days=1), today=TODAY)
    assert info.value.field == "started_on"
    with pytest.raises(DeliveryInvalid, match="before the line was ordered"):
        domain.start(line(), ORDERED_ON - timedelta(days=1), today=TODAY)
    for state in (started(), line(status="ended"), line(status="cancelled")):
        with pytest.raises(DeliveryConflict):
            domain.start(state, TODAY, today=TODAY)


def _end(before: Line, units: int, reason: str | None = None, on: date = TODAY) -> Line:
    price = Split(units * 17_450, units * 17_450, 0)
    return domain.end(
        before, delivered_units=units, ended_on=on, end_reason=reason, today=TODAY, price=price
    )


def test_a_line_delivered_in_full_ends_delivered_without_a_reason() -> None:
    done = _end(started(), 8)
    assert (done.status, done.outcome, done.delivered_units, done.end_reason) == (
        "ended",
        "delivered",
        8,
        None,
    )
    assert (done.cost_krw, done.district_paid_krw, done.self_paid_krw) == (
        8 * 17_450,
        8 * 17_450,
        0,
    )
    with pytest.raises(DeliveryInvalid) as info:
        _end(started(), 8, "refused")
    assert info.value.field == "end_reason"


def test_a_line_partly_delivered_needs_a_reason() -> None:
    with pytest.raises(DeliveryInvalid) as info:
        _end(started(), 3)
    assert info.value.field == "end_reason"
    done = _end(started(), 3, "moved-to-facility")
    assert (done.outcome, done.end_reason) == ("partly-delivered", "moved-to-facility")


def test_a_line_not_delivered_at_all_may_end_without_starting() -> None:
    done = _end(line(), 0, "provider-could-not-staff")
    assert (done.outcome, done.started_on, done.delivered_units) == ("not-delivered", None, 0)
    assert _end(started(), 0, "deceased").outcome == "not-delivered"


def test_units_delivered_mean_the_line_started() -> None:
    with pytest.raises(DeliveryConflict, match="has not started"):
        _end(line(), 2, "refused")


@pytest.mark.parametrize(
    ("units", "reason", "on", "field"),
    [
        (9, None, TODAY, "delivered_units"),
        (-1, "refused", TODAY, "delivered_units"),
        (3, "bored", TODAY, "end_reason"),
        (8, None, TODAY + timedelta(days=1), "ended_on"),
        (8, None, date(2026, 12, 1), "ended_on"),  # before it started (12-02)
    ],
)
def test_impossible_reports_name_the_field(
    units: int, reason: str | None, on: date, field: str
) -> None:
    with pytest.raises(DeliveryInvalid) as info:
        _end(started(), units, reason, on)
    assert info.value.field == field


def test_ending_before_the_ordering_is_refused() -> None:
    with pytest.raises(DeliveryInvalid, match="before the line was ordered"):
        _end(line(), 0, "refused", ORDERED_ON - timedelta(days=1))


def test_an_ended_or_cancelled_line_does_not_end_again() -> None:
    for state in (_end(started(), 8), line(status="cancelled")):
        with pytest.raises(DeliveryConflict):
            _end(state, 0, "refused")


def test_outcome_and_openness_by_state() -> None:
    assert line().outcome is None
    assert started().outcome is None
    assert line().open
    assert started().open
    assert not line(status="ended").open
    assert not line(status="cancelled").open


def test_what_a_line_holds_of_the_cap() -> None:
    assert line().cap_use_krw == 8 * 17_450  # ordered: the planned district part
    assert started().cap_use_krw == 8 * 17_450
    assert _end(started(), 3, "refused").cap_use_krw == 3 * 17_450  # ended: what was paid
    assert line(status="cancelled").cap_use_krw == 0


def test_the_first_line_to_start_is_announced_once() -> None:
    first, second = line(), line(line_no=2, id=2, service="meal_delivery")
    one = domain.start(first, TODAY, today=TODAY)
    assert domain.first_to_start([first, second], one)
    two = domain.start(second, TODAY, today=TODAY)
    assert not domain.first_to_start([one, second], two)
    # A line that ended without starting does not count as started.
    skipped = _end(first, 0, "refused")
    assert domain.first_to_start([skipped, second], two)


def test_all_ended_and_nothing_delivered() -> None:
    assert not domain.all_ended([])
    assert not domain.all_ended([_end(started(), 8), line(line_no=2)])
    assert domain.all_ended([_end(started(), 8), _end(line(line_no=2), 0, "refused")])
    assert domain.nothing_delivered(
        [_end(line(), 0, "refused"), _end(line(line_no=2), 0, "deceased")]
    )
    assert not domain.nothing_delivered(
        [_end(line(), 0, "refused"), _end(started(line_no=2), 1, "deceased")]
    )


def test_a_delivered_line_for_the_report() -> None:
    done = _end(started(), 3, "refused")
    report = domain.delivered_line(done, None)
    assert (report.line, report.quantity, report.delivered_units, report.outcome) == (
        1,
        8,
        3,
        "partly-delivered",
    )
    assert (report.cost_krw, report.district_paid_krw, report.self_paid_krw) == (52_350, 52_350, 0)
    assert (report.started_on, report.ended_on, report.end_reason) == (
        date(2026, 12, 2),
        TODAY,
        "refused",
    )


# ------------------------------------------------------------------ cost and split


def test_the_cost_of_what_was_delivered_is_at_the_policy_years_price() -> None:
    assert domain.delivered_cost(POLICY_2026, "short_term_facility", 3) == 3 * 74_060
    assert domain.delivered_cost(BOOK.for_year(2025), "short_term_facility", 3) == 3 * 71_970
    assert domain.delivered_cost(POLICY_2026, "meal_delivery", 0) == 0


def test_a_missing_unit_price_is_never_guessed() -> None:
    with pytest.raises(PolicyIncomplete):
        domain.delivered_cost(POLICY_2024, "meal_delivery", 1)
    assert domain.delivered_cost(POLICY_2024, "meal_delivery", 0) == 0


def test_full_support_within_the_cap_is_all_district() -> None:
    assert domain.split(
        100_000, fee_support="full", self_pay_share=Fraction(1), cap_room_krw=500_000
    ) == Split(100_000, 100_000, 0)


def test_full_support_over_the_cap_pays_the_excess_itself() -> None:
    assert domain.split(
        100_000, fee_support="full", self_pay_share=Fraction(1), cap_room_krw=30_000
    ) == Split(100_000, 30_000, 70_000)


def test_full_support_with_the_cap_used_up_is_all_self_paid() -> None:
    for room in (0, -5):
        assert domain.split(
            100_000, fee_support="full", self_pay_share=Fraction(1), cap_room_krw=room
        ) == Split(100_000, 0, 100_000)


def test_self_pay_at_the_default_share_is_all_the_resident() -> None:
    assert domain.split(
        100_000, fee_support="self-pay", self_pay_share=Fraction(1), cap_room_krw=10**9
    ) == Split(100_000, 0, 100_000)


def test_self_pay_with_a_share_splits_rounded_down_for_the_district() -> None:
    result = domain.split(
        10_001, fee_support="self-pay", self_pay_share=Fraction(3, 10), cap_room_krw=10**9
    )
    assert result == Split(10_001, 7_000, 3_001)  # 70% of 10,001 = 7,000.7 -> 7,000


def test_self_pay_with_a_share_is_capped_too() -> None:
    result = domain.split(
        100_000, fee_support="self-pay", self_pay_share=Fraction(3, 10), cap_room_krw=50_000
    )
    assert result == Split(100_000, 50_000, 50_000)


def test_nothing_delivered_costs_nothing() -> None:
    assert domain.split(0, fee_support="full", self_pay_share=Fraction(1), cap_room_krw=0) == Split(
        0, 0, 0
    )
    with pytest.raises(ValueError, match="negative"):
        domain.split(-1, fee_support="full", self_pay_share=Fraction(1), cap_room_krw=0)
