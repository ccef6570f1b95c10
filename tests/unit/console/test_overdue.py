"""The lead's overdue view (services/console/overdue.py) and the live escalations it is
pushed (services/console/escalations.py), issue 10: pure parts, no server."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from contracts.escalations import TaskOverdue
from services.console.escalations import MAX_AGE, Escalations, read
from services.console.overdue import age_bucket, summarise
from services.console.schemas import TaskOut

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def task(task_id: int, kind: str, overdue_for: timedelta, **extra: Any) -> TaskOut:
    due = NOW - overdue_for
    return TaskOut.model_validate(
        {
            "service": "scheduling" if "visit" in kind else "referral",
            "id": task_id,
            "kind": kind,
            "case_id": f"case-{task_id}",
            "centre_id": "centre-songpa-gu",
            "priority": "routine",
            "due_at": due,
            "window_start": None,
            "status": "open",
            "overdue": due < NOW,
            "claimed_by": None,
            "lease_until": None,
            "attempts": 0,
            "result": None,
            "created_at": due - timedelta(days=3),
            "completed_at": None,
            "completed_by": None,
            **extra,
        }
    )


def test_ages_fall_into_the_buckets_a_lead_acts_on() -> None:
    assert age_bucket(timedelta(hours=2)) == "under-1-day"
    assert age_bucket(timedelta(days=1)) == "1-3-days"
    assert age_bucket(timedelta(days=6, hours=23)) == "3-7-days"
    assert age_bucket(timedelta(days=30)) == "over-7-days"


def test_counts_per_kind_and_age_and_the_oldest_first() -> None:
    view = summarise(
        "centre-songpa-gu",
        [
            task(1, "review", timedelta(hours=3)),
            task(2, "pre-discharge-visit", timedelta(days=9)),
            task(3, "review", timedelta(days=2)),
            task(4, "review", -timedelta(hours=5)),  # not due yet
            task(5, "care-plan", timedelta(days=4), status="done"),  # finished
        ],
        NOW,
    )

    assert view.total == 3
    assert [o.task.id for o in view.tasks] == [2, 3, 1]
    assert [o.age for o in view.tasks] == ["over-7-days", "1-3-days", "under-1-day"]
    assert view.tasks[1].overdue_for_hours == 48.0
    counts = {k.kind: (k.total, k.by_age) for k in view.by_kind}
    assert counts["review"] == (
        2,
        {"under-1-day": 1, "1-3-days": 1, "3-7-days": 0, "over-7-days": 0},
    )
    assert counts["pre-discharge-visit"][0] == 1
    assert "care-plan" not in counts
    assert view.by_kind[0].kind == "review"  # the kind with the most first


def overdue_event(
    task_id: int, *, centre: str = "centre-songpa-gu", age: timedelta = timedelta()
) -> TaskOverdue:
    return TaskOverdue(
        task_id=task_id,
        service="referral",
        case_id=f"case-{task_id}",
        kind="review",
        centre_id=centre,
        priority="urgent",
        due_at=NOW - timedelta(hours=1),
        status="open",
        detected_at=NOW - age,
    )


async def test_escalations_are_kept_per_centre_and_waiters_wake() -> None:
    feed = Escalations()
    seen = feed.version("centre-songpa-gu")
    waiting = asyncio.create_task(feed.wait("centre-songpa-gu", seen, timeout=5))
    await asyncio.sleep(0)

    assert await feed.add(overdue_event(7), now=NOW)
    assert await feed.add(overdue_event(8, centre="centre-gangnam-gu"), now=NOW)

    assert await waiting == seen + 1
    items = feed.since("centre-songpa-gu", seen)
    assert [(i["task_id"], i["kind"], i["priority"]) for i in items] == [(7, "review", "urgent")]
    assert set(items[0]) == {
        "service",
        "task_id",
        "case_id",
        "kind",
        "priority",
        "due_at",
        "detected_at",
    }


async def test_a_redelivered_or_stale_escalation_is_not_pushed_again() -> None:
    feed = Escalations()
    assert await feed.add(overdue_event(7), now=NOW)
    assert not await feed.add(overdue_event(7), now=NOW)
    assert not await feed.add(overdue_event(9, age=MAX_AGE + timedelta(minutes=1)), now=NOW)
    assert feed.version("centre-songpa-gu") == 1


async def test_a_quiet_centre_times_out_unchanged() -> None:
    assert await Escalations().wait("centre-songpa-gu", 0, timeout=0.01) == 0


def test_a_record_that_is_not_a_task_overdue_is_skipped() -> None:
    assert read(b"not json") is None
    assert read(overdue_event(3).model_dump_json().encode()) == overdue_event(3)
