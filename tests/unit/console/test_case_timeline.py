"""services/console/timeline: the case page's timeline, in the order things happened
(issue 10)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from services.console.schemas import CaseFacts, CaseOut, PlanLineOut, TaskOut, UpdateOut
from services.console.timeline import timeline

T0 = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)  # 10:00 in Seoul


def task(**fields: object) -> TaskOut:
    base: dict[str, object] = {
        "service": "referral",
        "id": 1,
        "kind": "review",
        "case_id": "case-1",
        "centre_id": "songpa",
        "priority": "routine",
        "due_at": T0 + timedelta(days=3),
        "window_start": None,
        "status": "done",
        "overdue": False,
        "claimed_by": None,
        "lease_until": None,
        "attempts": 0,
        "result": None,
        "created_at": T0,
        "completed_at": T0 + timedelta(hours=2),
        "completed_by": "songpa",
    }
    return TaskOut.model_validate({**base, **fields})


def update(sequence: int, at: datetime, status: str, step: str) -> UpdateOut:
    return UpdateOut(
        hospital_id="police-hospital",
        referral_id="ref-1",
        sequence=sequence,
        status=status,
        business_status=step,
        occurred_at=at,
    )


def test_tasks_updates_and_lines_interleave_by_when_they_happened() -> None:
    line = PlanLineOut(
        id=1,
        line=1,
        service="meal_delivery",
        quantity=10,
        unit="meal",
        provider_id="p-1",
        planned_start=date(2026, 12, 3),
        ordered_on=date(2026, 12, 2),
        status="ended",
        outcome="delivered",
        started_on=date(2026, 12, 3),
        ended_on=date(2026, 12, 5),
        delivered_units=10,
    )
    case = CaseOut(
        case_id="case-1",
        card=None,
        facts=CaseFacts(case_id="case-1", lines=[line]),
        tasks=[task()],
        updates=[
            update(1, T0 - timedelta(minutes=5), "received", "received"),
            update(2, T0 + timedelta(hours=2, seconds=1), "accepted", "reviewed"),
        ],
    )

    entries = timeline(case)

    assert [(e.what, e.sequence) for e in entries] == [
        ("line", None),  # ordered on the 2nd: a day, placed at its start in Seoul
        ("update", 1),
        ("task", None),
        ("task", None),
        ("update", 2),
        ("line", None),
        ("line", None),
    ]
    assert entries[2].link == "/tasks/referral/1"
    assert entries[-1].detail == "10/10"
    assert entries[-1].day_only
    assert entries[-1].at.date() == date(2026, 12, 5)


def test_an_update_with_a_reason_shows_the_code_and_the_korean_reason() -> None:
    held = update(3, T0, "on-hold", "on-hold").model_copy(
        update={"reason_code": "unreachable", "reason_ko": "연락 불가"}
    )
    case = CaseOut(case_id="c", card=None, facts=CaseFacts(case_id="c"), tasks=[], updates=[held])

    (entry,) = timeline(case)

    assert entry.detail == "unreachable: 연락 불가"
    assert entry.sequence == 3
