"""services/scheduling/domain.py: visit windows, postponement horizon, contact attempts."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.lib.policy import SEOUL_TZ
from services.scheduling.domain import (
    post_discharge_window,
    postponed_beyond_horizon,
    pre_discharge_window,
    unreachable,
)


def seoul(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SEOUL_TZ)


def test_pre_discharge_window_starts_now_and_ends_at_the_start_of_the_discharge_day_in_seoul() -> (
    None
):
    now = datetime(2025, 3, 1, 1, 0, tzinfo=UTC)
    start, end = pre_discharge_window(now, date(2025, 3, 5))
    assert start == now
    assert end == seoul(2025, 3, 5)
    assert end == datetime(2025, 3, 4, 15, 0, tzinfo=UTC)


def test_pre_discharge_window_ends_at_the_start_of_tomorrow_in_seoul_when_discharge_day_has_begun() -> (
    None
):
    # 2025-03-04T15:30Z is 2025-03-05 00:30 in Seoul: the discharge day has begun there,
    # and "tomorrow" is 2025-03-06 in Seoul (not 2025-03-05 as the UTC date would say).
    now = datetime(2025, 3, 4, 15, 30, tzinfo=UTC)
    start, end = pre_discharge_window(now, date(2025, 3, 5))
    assert start == now
    assert end == seoul(2025, 3, 6)


def test_pre_discharge_window_ends_at_the_start_of_tomorrow_when_now_is_exactly_the_day_start() -> (
    None
):
    now = seoul(2025, 3, 5)
    _, end = pre_discharge_window(now, date(2025, 3, 5))
    assert end == seoul(2025, 3, 6)


def test_pre_discharge_window_ends_at_the_start_of_tomorrow_when_discharge_date_is_past() -> None:
    now = seoul(2025, 3, 3, 10)
    _, end = pre_discharge_window(now, date(2025, 3, 1))
    assert end == seoul(2025, 3, 4)


def test_post_discharge_window_is_the_72_hours_after_discharge() -> None:
    discharged_at = datetime(2025, 3, 5, 7, 45, tzinfo=UTC)
    start, end = post_discharge_window(discharged_at)
    assert start == discharged_at
    assert end - start == timedelta(hours=72)


@pytest.mark.parametrize(
    ("days_ahead", "expected"),
    [(0, False), (6, False), (7, False), (8, True), (30, True)],
)
def test_postponed_beyond_horizon_only_strictly_beyond_the_horizon_days(
    days_ahead: int, expected: bool
) -> None:
    now = seoul(2025, 3, 1, 12)
    assert postponed_beyond_horizon(now, date(2025, 3, 1) + timedelta(days=days_ahead), 7) is (
        expected
    )


def test_postponed_beyond_horizon_counts_days_from_the_seoul_date() -> None:
    # 2025-02-28T16:00Z is 2025-03-01 in Seoul: 2025-03-08 is 7 days ahead there (8 by UTC).
    now = datetime(2025, 2, 28, 16, 0, tzinfo=UTC)
    assert postponed_beyond_horizon(now, date(2025, 3, 8), 7) is False
    assert postponed_beyond_horizon(now, date(2025, 3, 9), 7) is True


@pytest.mark.parametrize(
    ("attempts", "expected"),
    [(0, False), (2, False), (3, True), (4, True)],
)
def test_unreachable_at_or_above_max_attempts(attempts: int, expected: bool) -> None:
    assert unreachable(attempts, 3) is expected


def test_the_visit_windows_follow_the_rules_they_are_given() -> None:
    from services.lib.policy.deadlines import DeadlineRules

    rules = DeadlineRules.model_validate(
        {
            "pre-discharge-visit": {"from": "the expected discharge date", "days_before": 2},
            "post-discharge-visit": {
                "from": "the actual discharge",
                "routine": {"hours": 48, "counting": "calendar"},
                "urgent": {"hours": 24, "counting": "calendar"},
            },
        }
    )
    now = datetime(2025, 3, 1, 0, 0, tzinfo=UTC)
    _, end = pre_discharge_window(now, date(2025, 3, 10), rules.pre_discharge_visit)
    assert end == datetime(2025, 3, 8, tzinfo=SEOUL_TZ)
    home = datetime(2025, 3, 10, 6, 0, tzinfo=UTC)
    post = rules.post_discharge_visit
    assert post_discharge_window(home, "routine", post)[1] == home + timedelta(hours=48)
    assert post_discharge_window(home, "urgent", post)[1] == home + timedelta(hours=24)
