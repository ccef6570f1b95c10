"""Deadlines of coordinators' tasks, per task kind, as the year's policy states them
(issue 10), and the Korean business-day arithmetic they need.

A rule gives a number of hours and how they are counted:

- `calendar`: clock hours (72 hours after a Friday 10:00 is Monday 10:00);
- `business-days`: only the hours of Korean business days count, in Seoul time
  (Monday to Friday, not a public holiday: New Year, Seollal, Chuseok, the
  substitute holidays, election days … as the well-kept `holidays` package knows
  them, `holidays.KR`). 72 such hours after a Friday 10:00 end on Wednesday 10:00.

A start that falls on a day off counts from the next business day's midnight, so a
referral sent on a Saturday has its whole allowance from Monday 00:00 KST.

Pure: no I/O. The holiday calendar is built once per year and kept.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from functools import cache
from typing import Annotated, Literal

import holidays
from pydantic import BaseModel, ConfigDict, Field

# Seoul has no daylight saving time. The same as services.lib.policy.rules.SEOUL_TZ,
# which cannot be imported here: rules imports policy, which imports this module.
SEOUL_TZ = timezone(timedelta(hours=9), "KST")
Counting = Literal["calendar", "business-days"]
# The longest allowance a rule may give: a month of hours is already a policy mistake.
MAX_HOURS = 24 * 31


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Allowance(_Frozen):
    """How long, and how the hours are counted."""

    hours: Annotated[int, Field(strict=True, gt=0, le=MAX_HOURS)]
    counting: Counting = "calendar"


class DeadlineRule(_Frozen):
    """One task kind's deadline: an allowance for routine work and one for urgent work,
    from the moment named in `from_` (documentation for people; the code that creates
    the task passes that moment)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    from_: str = Field(alias="from", min_length=1, max_length=80)
    routine: Allowance
    urgent: Allowance

    def allowance(self, priority: str) -> Allowance:
        return self.urgent if priority == "urgent" else self.routine

    def due(self, start: datetime, priority: str) -> datetime:
        """When a task of this kind started at `start` with this priority is due."""
        return due_after(start, self.allowance(priority))


class DayRule(_Frozen):
    """A deadline set by a date, not a duration: the start (midnight, Seoul time) of the
    day named in `from_`, less `days_before` days. The pre-discharge visit is due before
    the patient leaves: at the start of the expected discharge day."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    from_: str = Field(alias="from", min_length=1, max_length=80)
    days_before: Annotated[int, Field(strict=True, ge=0, le=31)] = 0

    def due(self, day: date) -> datetime:
        return datetime.combine(day - timedelta(days=self.days_before), time.min, tzinfo=SEOUL_TZ)


def _rule(start: str, routine: dict[str, object], urgent: dict[str, object]) -> DeadlineRule:
    return DeadlineRule.model_validate({"from": start, "routine": routine, "urgent": urgent})


class DeadlineRules(_Frozen):
    """The deadline rule of every kind of coordinator task. The defaults are the
    programme's (domain.md); each year's policy file states them under `deadlines`."""

    # First contact: a coordinator reviews the referral (and calls).
    review: DeadlineRule = _rule(
        "the hospital's submission (submitted_at)",
        {"hours": 72, "counting": "business-days"},
        {"hours": 24, "counting": "calendar"},
    )
    # The pre-discharge visit or call: before the expected discharge date.
    pre_discharge_visit: DayRule = Field(
        default=DayRule.model_validate({"from": "the expected discharge date", "days_before": 0}),
        alias="pre-discharge-visit",
    )
    care_plan: DeadlineRule = Field(
        default=_rule(
            "the pre-discharge visit done",
            {"hours": 72, "counting": "business-days"},
            {"hours": 72, "counting": "calendar"},
        ),
        alias="care-plan",
    )
    # The post-discharge visit: within 72 hours of the actual discharge (programme design).
    post_discharge_visit: DeadlineRule = Field(
        default=_rule(
            "the actual discharge (discharged_at)",
            {"hours": 72, "counting": "calendar"},
            {"hours": 72, "counting": "calendar"},
        ),
        alias="post-discharge-visit",
    )
    # The delivery task (the providers' reports): a week after the last ordered line's
    # planned period ends, for late reports.
    delivery: DeadlineRule = _rule(
        "the end of the last ordered line's planned period (midnight, Seoul time)",
        {"hours": 168, "counting": "calendar"},
        {"hours": 168, "counting": "calendar"},
    )

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    def for_kind(self, kind: str) -> DeadlineRule:
        """The duration rule of a task kind (the pre-discharge visit's is a DayRule)."""
        rule = {
            "review": self.review,
            "care-plan": self.care_plan,
            "post-discharge-visit": self.post_discharge_visit,
            "delivery": self.delivery,
        }.get(kind)
        if rule is None:
            raise KeyError(f"no duration deadline rule for task kind {kind!r}")
        return rule


@cache
def _korean_holidays(year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("KR", years=year))


def is_business_day(day: date) -> bool:
    """Monday to Friday and not a Korean public holiday (substitute holidays included)."""
    return day.weekday() < 5 and day not in _korean_holidays(day.year)


def holiday_name(day: date) -> str | None:
    """The holiday's name, for messages and tests; None on an ordinary day."""
    name = holidays.country_holidays("KR", years=day.year).get(day)
    return str(name) if name is not None else None


def due_after(start: datetime, allowance: Allowance) -> datetime:
    """`start` plus the allowance, counted as it says; aware in, aware out (UTC kept as
    given: the answer has `start`'s time zone)."""
    if start.tzinfo is None:
        raise ValueError("start must be an aware datetime")
    if allowance.counting == "calendar":
        return start + timedelta(hours=allowance.hours)
    remaining = timedelta(hours=allowance.hours)
    cursor = start.astimezone(SEOUL_TZ)
    # Bounded: at most the allowance's days plus the longest run of days off (Seollal or
    # Chuseok beside a weekend and a substitute day) for each of them, generously.
    for _ in range(10 * (allowance.hours // 24 + 2)):
        midnight = datetime.combine(cursor.date() + timedelta(days=1), time.min, tzinfo=SEOUL_TZ)
        if is_business_day(cursor.date()):
            step = min(midnight - cursor, remaining)
            cursor += step
            remaining -= step
            if remaining <= timedelta(0):
                return cursor.astimezone(start.tzinfo)
        else:
            cursor = midnight
    raise RuntimeError("no business day found: the holiday calendar cannot be right")
