"""Pure visit rules: windows, postponement and contact attempts."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from services.lib.policy import SEOUL_TZ

# Post-discharge visit within 72 hours of the actual discharge (programme design).
POST_DISCHARGE_WITHIN = timedelta(hours=72)
PRE_DISCHARGE = "pre-discharge-visit"
POST_DISCHARGE = "post-discharge-visit"
TASK_KIND = {"pre-discharge": PRE_DISCHARGE, "post-discharge": POST_DISCHARGE}
VISIT_KIND = {v: k for k, v in TASK_KIND.items()}


def pre_discharge_window(now: datetime, expected_discharge: date) -> tuple[datetime, datetime]:
    """From now until the start of the expected discharge day (Seoul time): the visit or
    call must happen before the patient leaves.

    If that day is already here, the window is the rest of today: a call is still
    better than nothing, and the coordinator sees it as due at once.
    """
    end = datetime.combine(expected_discharge, time.min, tzinfo=SEOUL_TZ)
    if end <= now:
        end = datetime.combine(
            now.astimezone(SEOUL_TZ).date() + timedelta(days=1), time.min, tzinfo=SEOUL_TZ
        )
    return now, end


def post_discharge_window(discharged_at: datetime) -> tuple[datetime, datetime]:
    return discharged_at, discharged_at + POST_DISCHARGE_WITHIN


def postponed_beyond_horizon(now: datetime, expected_discharge: date, horizon_days: int) -> bool:
    """A discharge moved further out than the horizon cannot keep a pre-discharge visit
    planned now: the case waits on hold until the date comes closer."""
    today = now.astimezone(SEOUL_TZ).date()
    return (expected_discharge - today).days > horizon_days


def unreachable(attempts: int, max_attempts: int) -> bool:
    return attempts >= max_attempts
