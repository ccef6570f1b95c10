"""A case's timeline for its page (issue 10): every task (created, done), every update
sent to the hospitals with its sequence, every delivery line's order, start and end,
every exit a coordinator took (who, the reason in Korean and English, the note), in
the order they happened. Pure: built from the case page's data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time

from services.console import labels
from services.console.schemas import CaseOut, ExitOut
from services.lib.policy import SEOUL_TZ


@dataclass(frozen=True)
class Entry:
    at: datetime
    # task | update | line | exit: what the row is, for its style and for tests.
    what: str
    label: str
    detail: str = ""
    link: str | None = None
    sequence: int | None = None
    hospital_id: str | None = None
    # True when `at` is a day, not a moment (delivery lines are recorded by date).
    day_only: bool = False
    # An exit's coordinator (the page shows their name) and note: the page is the
    # centre's staff's, and the note never goes to a hospital.
    actor: str | None = None
    note: str | None = None


def _day(value: date) -> datetime:
    # A day's events sort at its start in Seoul, before what happened during it.
    return datetime.combine(value, time.min, tzinfo=SEOUL_TZ)


def timeline(case: CaseOut) -> list[Entry]:
    entries: list[Entry] = []
    for task in case.tasks:
        kind = labels.KINDS.get(task.kind, task.kind)
        link = f"/tasks/{task.service}/{task.id}"
        entries.append(Entry(task.created_at, "task", f"{kind} 생성 created", link=link))
        if task.completed_at is not None:
            entries.append(
                Entry(
                    task.completed_at,
                    "task",
                    f"{kind} {labels.STATUSES.get(task.status, task.status)}",
                    detail=task.completed_by or "",
                    link=link,
                )
            )
    for update in case.updates:
        reason = update.reason_ko or update.reason or ""
        entries.append(
            Entry(
                update.occurred_at,
                "update",
                f"{update.status} · {update.business_status}",
                detail=f"{update.reason_code}: {reason}" if update.reason_code else "",
                sequence=update.sequence,
                hospital_id=update.hospital_id,
            )
        )
    for line in case.facts.lines:
        service = labels.SERVICES.get(line.service, line.service)
        steps = [(line.ordered_on, "발주 ordered"), (line.started_on, "시작 started")]
        steps.append((line.ended_on, labels.LINE_OUTCOMES.get(line.outcome or "", "종료 ended")))
        for on, step in steps:
            if on is not None:
                units = f"{line.delivered_units}/{line.quantity}" if step == steps[-1][1] else ""
                entries.append(
                    Entry(
                        _day(on),
                        "line",
                        f"{line.line}. {service} {step}",
                        detail=units,
                        day_only=True,
                    )
                )
    entries += [_exit(done) for done in case.exits]
    return sorted(entries, key=lambda e: (e.at, e.what != "line", e.sequence or 0))


def exit_reason(done: ExitOut) -> str:
    """The exit's reason in Korean and English (the code itself when unknown)."""
    if done.action == "fee-support":
        before = labels.FEE_SUPPORT.get(done.previous or "", done.previous or "?")
        after = labels.FEE_SUPPORT.get(done.fee_support or "", done.fee_support or "?")
        return f"{before} → {after}"
    code = done.reason_code or ""
    known = labels.CANCEL_REASONS if done.action == "cancel" else labels.HOLD_REASONS
    return known.get(code, code)


def _exit(done: ExitOut) -> Entry:
    label = labels.EXIT_ACTIONS.get(done.action, done.action)
    if done.kind:
        label += f" ({labels.KINDS.get(done.kind, done.kind)})"
    link = f"/tasks/scheduling/{done.task_id}" if done.task_id else None
    return Entry(
        done.at,
        "exit",
        label,
        detail=exit_reason(done),
        link=link,
        actor=done.actor,
        note=done.note,
    )
