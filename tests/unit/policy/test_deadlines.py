"""Task deadlines per kind from the year's policy, counted on Korean business days
where the rule says so (services/lib/policy/deadlines.py, issue 10): ordinary weeks,
weekends, Seollal, Chuseok and substitute holidays, Seoul time whatever the zone."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from services.lib.policy import ConfigError, load_policies
from services.lib.policy.deadlines import (
    Allowance,
    DeadlineRules,
    due_after,
    holiday_name,
    is_business_day,
)
from services.lib.policy.policy import DEFAULT_POLICY_DIR

KST = timezone(timedelta(hours=9))
BUSINESS_72 = Allowance(hours=72, counting="business-days")
CLOCK_24 = Allowance(hours=24, counting="calendar")


def kst(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=KST)  # type: ignore[misc]


def test_calendar_hours_are_clock_hours_across_a_weekend() -> None:
    friday = kst(2026, 11, 27, 10, 0)
    assert due_after(friday, CLOCK_24) == kst(2026, 11, 28, 10, 0)


def test_72_business_hours_from_a_friday_morning_end_on_wednesday_morning() -> None:
    friday = kst(2026, 11, 27, 10, 0)  # an ordinary week: no holiday until Christmas
    assert due_after(friday, BUSINESS_72) == kst(2026, 12, 2, 10, 0)


def test_a_referral_on_a_saturday_counts_from_monday_midnight() -> None:
    saturday = kst(2026, 11, 28, 15, 30)
    assert due_after(saturday, BUSINESS_72) == kst(2026, 12, 3, 0, 0)


def test_seoul_time_decides_the_day_not_utc() -> None:
    # Friday 16:00 UTC is Saturday 01:00 in Seoul: a day off, so counting starts Monday.
    late_friday_utc = datetime(2026, 12, 4, 16, 0, tzinfo=UTC)
    due = due_after(late_friday_utc, BUSINESS_72)
    assert due == kst(2026, 12, 10, 0, 0)
    assert due.tzinfo is UTC  # answered in the zone it was asked in


def test_seollal_and_its_weekend_are_skipped() -> None:
    # 2026: Seollal Mon 16 - Wed 18 February, after a weekend.
    assert [is_business_day(date(2026, 2, d)) for d in range(13, 20)] == [
        True,  # Fri 13
        False,  # Sat
        False,  # Sun
        False,  # Mon, the day before Seollal
        False,  # Tue, Seollal
        False,  # Wed, the day after
        True,  # Thu 19
    ]
    friday = kst(2026, 2, 13, 10, 0)  # 14 h Fri, 24 h Thu 19, 24 h Fri 20, 10 h Mon 23
    assert due_after(friday, BUSINESS_72) == kst(2026, 2, 23, 10, 0)


def test_chuseok_beside_a_weekend_is_skipped() -> None:
    # 2026: Chuseok Thu 24 - Sat 26 September.
    wednesday = kst(2026, 9, 23, 10, 0)  # 14 h Wed, then Mon 28, Tue 29, 10 h Wed 30
    assert due_after(wednesday, BUSINESS_72) == kst(2026, 9, 30, 10, 0)


def test_a_substitute_holiday_is_a_day_off() -> None:
    # National Foundation Day fell on Saturday 3 October 2026: Monday 5 is its substitute.
    monday = date(2026, 10, 5)
    assert not is_business_day(monday)
    assert "Alternative" in (holiday_name(monday) or "")
    friday = kst(2026, 10, 2, 10, 0)  # 14 h Fri, Tue 6, Wed 7, 10 h Thu 8
    assert due_after(friday, BUSINESS_72) == kst(2026, 10, 8, 10, 0)
    # And 2025's Chuseok substitute (Wednesday 8 October 2025).
    assert not is_business_day(date(2025, 10, 8))


def test_an_ordinary_weekday_is_a_business_day() -> None:
    assert is_business_day(date(2026, 12, 2))
    assert holiday_name(date(2026, 12, 2)) is None


def test_a_naive_start_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        due_after(datetime(2026, 12, 2, 10, 0), BUSINESS_72)


def test_every_shipped_policy_states_the_first_contact_rule() -> None:
    book = load_policies(DEFAULT_POLICY_DIR)
    for policy in book.policies:
        review = policy.deadlines.review
        assert review.routine == BUSINESS_72, policy.year
        assert review.urgent == CLOCK_24, policy.year
        assert policy.deadlines.for_kind("care-plan").routine == BUSINESS_72


def test_urgent_work_takes_the_urgent_allowance() -> None:
    rules = DeadlineRules()
    friday = kst(2026, 11, 27, 10, 0)
    assert rules.review.due(friday, "urgent") == kst(2026, 11, 28, 10, 0)
    assert rules.review.due(friday, "routine") == kst(2026, 12, 2, 10, 0)


def test_a_policy_file_with_an_unknown_counting_is_refused_naming_the_field(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "policy"
    shutil.copytree(DEFAULT_POLICY_DIR, directory)
    path = directory / "2026.yaml"
    text = path.read_text(encoding="utf-8")
    old = "routine: {hours: 72, counting: business-days}"
    assert old in text
    path.write_text(text.replace(old, "routine: {hours: 72, counting: workdays}", 1), "utf-8")

    with pytest.raises(ConfigError) as info:
        load_policies(directory)
    assert "deadlines.review.routine.counting" in str(info.value)
    assert path.name in str(info.value)


def test_every_shipped_policy_states_every_task_kinds_rule_with_the_programmes_values() -> None:
    book = load_policies(DEFAULT_POLICY_DIR)
    clock_72 = Allowance(hours=72, counting="calendar")
    week = Allowance(hours=168, counting="calendar")
    for policy in book.policies:
        rules = policy.deadlines
        # Stated in the file, not taken from the code's defaults.
        stated = policy.deadlines.model_fields_set
        assert {"review", "pre_discharge_visit", "care_plan"} <= stated, policy.year
        assert {"post_discharge_visit", "delivery"} <= stated, policy.year
        assert rules.pre_discharge_visit.days_before == 0, policy.year
        post = rules.for_kind("post-discharge-visit")
        assert (post.routine, post.urgent) == (clock_72, clock_72), policy.year
        delivery = rules.for_kind("delivery")
        assert (delivery.routine, delivery.urgent) == (week, week), policy.year


def test_the_pre_discharge_visit_is_due_at_the_start_of_the_discharge_day_in_seoul() -> None:
    rule = DeadlineRules().pre_discharge_visit
    assert rule.due(date(2026, 12, 10)) == kst(2026, 12, 10, 0, 0)
    earlier = rule.model_copy(update={"days_before": 1})
    assert earlier.due(date(2026, 12, 10)) == kst(2026, 12, 9, 0, 0)


def test_the_post_discharge_visit_is_due_72_clock_hours_after_the_discharge() -> None:
    rule = DeadlineRules().post_discharge_visit
    friday = kst(2026, 11, 27, 15, 30)  # clock hours: the weekend counts
    assert rule.due(friday, "routine") == kst(2026, 11, 30, 15, 30)
    assert rule.due(friday, "urgent") == kst(2026, 11, 30, 15, 30)


def test_the_delivery_task_is_due_a_week_after_the_planned_period() -> None:
    end = kst(2026, 12, 22, 0, 0)
    assert DeadlineRules().delivery.due(end, "routine") == kst(2026, 12, 29, 0, 0)


def test_a_task_kind_without_a_duration_rule_is_named() -> None:
    with pytest.raises(KeyError, match="pre-discharge-visit"):
        DeadlineRules().for_kind("pre-discharge-visit")


def test_a_policy_file_may_change_the_post_discharge_rule(tmp_path: Path) -> None:
    directory = tmp_path / "policy"
    shutil.copytree(DEFAULT_POLICY_DIR, directory)
    path = directory / "2026.yaml"
    text = path.read_text(encoding="utf-8")
    old = """  post-discharge-visit:
    from: the actual discharge (discharged_at)
    routine: {hours: 72, counting: calendar}"""
    assert old in text
    new = old.replace("{hours: 72, counting: calendar}", "{hours: 48, counting: business-days}")
    path.write_text(text.replace(old, new, 1), "utf-8")

    rule = load_policies(directory).for_year(2026).deadlines.post_discharge_visit
    friday = kst(2026, 11, 27, 10, 0)
    assert rule.due(friday, "routine") == kst(2026, 12, 1, 10, 0)
    assert rule.due(friday, "urgent") == kst(2026, 11, 30, 10, 0)
