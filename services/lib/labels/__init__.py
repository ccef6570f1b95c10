"""Korean and English labels side by side, and the formats people's screens share.

A library for the interfaces people use (the social workers' portal and the
coordinators' console, which adds its own task labels in services/console/labels.py):
codes stay codes in APIs and events, screens show these labels.
"""

from __future__ import annotations

from datetime import date, datetime

from contracts.hospital_v1 import Status
from services.lib.policy import SEOUL_TZ

SERVICES = {
    "temporary_home_care": "일시재가 Temporary home care (30 min)",
    "short_term_facility": "단기시설 Short-term facility (day)",
    "accompaniment": "동행지원 Accompaniment (hour)",
    "home_repair": "주거편의 수리 Home repair (hour)",
    "residential_convenience": "주거편의 청소 Cleaning, disinfection (hour)",
    "meal_delivery": "식사지원 Meal delivery (meal)",
}
UNITS = {
    "per_30_min": "30분 half-hours",
    "per_day": "일 days",
    "per_hour": "시간 hours",
    "per_meal": "식 meals",
}
LINE_OUTCOMES = {
    "delivered": "제공 완료 Delivered",
    "partly-delivered": "일부 제공 Partly delivered",
    "not-delivered": "미제공 Not delivered",
}
PRIORITIES = {"urgent": "긴급 Urgent", "routine": "일반 Routine"}
MOBILITY = {
    "independent": "독립 보행 Independent",
    "assisted": "부축 필요 Needs assistance",
    "wheelchair": "휠체어 Wheelchair",
    "bedridden": "와상 Bedridden",
}
CONSENT_METHODS = {
    "written": "서면 Written",
    "verbal": "구두 Verbal",
    "electronic": "전자 Electronic",
}
SEX = {"F": "여 F", "M": "남 M", "X": "기타 X"}
PAID_BY = {"district": "구청 District", "resident": "본인 Resident", "shared": "분담 Shared"}
# The hospital contract's statuses (FHIR R4 Task).
STATUSES = {
    Status.RECEIVED.value: "접수 Received",
    Status.ACCEPTED.value: "수락 Accepted",
    Status.REJECTED.value: "반려 Rejected",
    Status.IN_PROGRESS.value: "진행 중 In progress",
    Status.ON_HOLD.value: "보류 On hold",
    Status.COMPLETED.value: "완료 Completed",
    Status.CANCELLED.value: "취소 Cancelled",
    Status.FAILED.value: "실패 Failed",
}
TERMINAL_STATUSES = frozenset(
    {Status.REJECTED.value, Status.CANCELLED.value, Status.COMPLETED.value, Status.FAILED.value}
)


def kst(value: datetime | str | None) -> str:
    """A moment as Seoul local time, which is what people in Seoul plan in."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    if value.tzinfo is None:
        return value.strftime("%Y-%m-%d %H:%M")
    return value.astimezone(SEOUL_TZ).strftime("%Y-%m-%d %H:%M KST")


def day(value: date | str | None) -> str:
    if value is None or value == "":
        return "—"
    return value.isoformat() if isinstance(value, date) else str(value)


def krw(value: int | None) -> str:
    return "—" if value is None else f"{value:,} 원"


def yes_no(value: bool | None) -> str:
    if value is None:
        return "—"
    return "예 Yes" if value else "아니오 No"


FILTERS = {"kst": kst, "day": day, "krw": krw, "yes_no": yes_no}
