"""Pure visit-window rules."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from services.policy import SEOUL_TZ

# Post-discharge visit within 72 hours of the actual discharge (programme design).
POST_DISCHARGE_WITHIN = timedelta(hours=72)


def pre_discharge_window(now: datetime, expected_discharge: date) -> tuple[datetime, datetime]:
    """From now until the start of the expected discharge day (Seoul time).

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
