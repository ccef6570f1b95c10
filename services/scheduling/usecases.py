"""Scheduling's use cases.

Subscriber side (`CaseEvents`): plan the pre-discharge visit once the review
found the case eligible, re-plan it when the discharge date moves (on hold
when it moves beyond the horizon), mark it missed if the patient leaves first,
and plan the post-discharge visit once services are linked and the patient is
home; readmission suspends it. Interface side (`Coordinator`): record a visit,
a failed contact attempt (unreachable after the configured number), reopen.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg

from contracts.cases import CaseEvent
from contracts.intake import (
    CaseAccepted,
    CaseCancelled,
    CaseDischarged,
    CaseReadmitted,
    DischargeDateChanged,
)
from contracts.outcome import CaseClosed
from contracts.referral import CaseFailed, ReviewCompleted, ServicesLinked
from contracts.scheduling import CaseOnHold, CaseResumed, VisitDone, VisitScheduled
from services.lib.runtime.events import CaseEventRouter, emit
from services.lib.runtime.pipeline import Handler, Record
from services.lib.tasks import operations as tasks
from services.scheduling import domain, store

SERVICE = "scheduling"


def _base(case: asyncpg.Record | CaseEvent, now: datetime) -> dict[str, Any]:
    get = case.__getitem__ if isinstance(case, asyncpg.Record) else case.__getattribute__
    return {
        "case_id": get("case_id"),
        "hospital_id": get("hospital_id"),
        "referral_id": get("referral_id"),
        "occurred_at": now,
    }


async def _live(conn: asyncpg.Connection, case_id: str, kind: str) -> tasks.Task | None:
    for task in reversed(await tasks.for_case(conn, case_id)):
        if task.kind == kind and task.status in ("open", "claimed", "suspended"):
            return task
    return None


class CaseEvents:
    def __init__(self, *, horizon_days: int) -> None:
        self._horizon = horizon_days

    def handler(self) -> Handler:
        return CaseEventRouter(
            {
                CaseAccepted: self._accepted,
                ReviewCompleted: self._reviewed,
                DischargeDateChanged: self._date_changed,
                CaseReadmitted: self._readmitted,
                CaseDischarged: self._discharged,
                ServicesLinked: self._services_linked,
                CaseCancelled: self._closed,
                CaseFailed: self._closed,
                CaseClosed: self._closed,
            }
        )

    async def _accepted(self, conn: asyncpg.Connection, record: Record, ev: CaseAccepted) -> None:
        await store.add_case(
            conn,
            case_id=ev.case_id,
            hospital_id=ev.hospital_id,
            referral_id=ev.referral_id,
            centre_id=ev.centre_id,
            priority=ev.priority,
            expected_discharge_date=ev.expected_discharge_date,
        )

    async def _reviewed(
        self, conn: asyncpg.Connection, record: Record, ev: ReviewCompleted
    ) -> None:
        case = await store.get_case(conn, ev.case_id)
        if case is None or case["closed"] or case["reviewed"]:
            return
        if ev.decision == "ineligible":
            await self._close(conn, ev.case_id)
            return
        await store.set_case(conn, ev.case_id, reviewed=True)
        now = datetime.now(UTC)
        if case["discharged_at"] is not None:
            await self._missed_pre_visit(conn, record, case, now)
            return
        start, end = domain.pre_discharge_window(now, case["expected_discharge_date"])
        await tasks.create(
            conn,
            case_id=ev.case_id,
            kind=domain.PRE_DISCHARGE,
            centre_id=case["centre_id"],
            priority=case["priority"],
            due_at=end,
            window_start=start,
        )
        if domain.postponed_beyond_horizon(now, case["expected_discharge_date"], self._horizon):
            await self._hold(conn, record, case, "discharge-postponed", [domain.PRE_DISCHARGE], now)
            return
        await self._scheduled(conn, record, case, "pre-discharge", start, end, now)

    async def _date_changed(
        self, conn: asyncpg.Connection, record: Record, ev: DischargeDateChanged
    ) -> None:
        case = await store.get_case(conn, ev.case_id)
        if case is None or case["closed"]:
            return
        await store.set_case(conn, ev.case_id, expected_discharge_date=ev.expected_discharge_date)
        pre = await _live(conn, ev.case_id, domain.PRE_DISCHARGE)
        if pre is None:
            return
        now = datetime.now(UTC)
        start, end = domain.pre_discharge_window(now, ev.expected_discharge_date)
        await tasks.replan(conn, ev.case_id, domain.PRE_DISCHARGE, due_at=end, window_start=start)
        if domain.postponed_beyond_horizon(now, ev.expected_discharge_date, self._horizon):
            if case["hold_reason"] != "discharge-postponed":
                await self._hold(
                    conn, record, case, "discharge-postponed", [domain.PRE_DISCHARGE], now
                )
            return
        if pre.status == "suspended" and case["hold_reason"] == "discharge-postponed":
            await tasks.resume(
                conn, ev.case_id, domain.PRE_DISCHARGE, due_at=end, window_start=start
            )
            await store.set_case(conn, ev.case_id, hold_reason=None)
            await emit(
                conn,
                CaseResumed(**_base(case, now), kind="pre-discharge"),
                service=SERVICE,
                cause=record,
            )
        await self._scheduled(conn, record, case, "pre-discharge", start, end, now)

    async def _readmitted(
        self, conn: asyncpg.Connection, record: Record, ev: CaseReadmitted
    ) -> None:
        case = await store.get_case(conn, ev.case_id)
        if case is None or case["closed"]:
            return
        await store.set_case(
            conn, ev.case_id, expected_discharge_date=ev.expected_discharge_date, discharged_at=None
        )
        await self._hold(
            conn, record, case, "readmitted", [domain.POST_DISCHARGE], datetime.now(UTC)
        )

    async def _discharged(
        self, conn: asyncpg.Connection, record: Record, ev: CaseDischarged
    ) -> None:
        case = await store.get_case(conn, ev.case_id)
        if case is None or case["closed"]:
            return
        await store.set_case(conn, ev.case_id, discharged_at=ev.discharged_at, hold_reason=None)
        now = datetime.now(UTC)
        if await _live(conn, ev.case_id, domain.PRE_DISCHARGE) is not None:
            await self._missed_pre_visit(conn, record, case, now)
        post = await _live(conn, ev.case_id, domain.POST_DISCHARGE)
        start, end = domain.post_discharge_window(ev.discharged_at)
        if post is not None and post.status == "suspended":
            await tasks.resume(
                conn, ev.case_id, domain.POST_DISCHARGE, due_at=end, window_start=start
            )
            await emit(
                conn,
                CaseResumed(**_base(case, now), kind="post-discharge"),
                service=SERVICE,
                cause=record,
            )
            await self._scheduled(conn, record, case, "post-discharge", start, end, now)
        elif post is None and case["services_linked"]:
            await self._plan_post_visit(conn, record, case, ev.discharged_at, now)

    async def _services_linked(
        self, conn: asyncpg.Connection, record: Record, ev: ServicesLinked
    ) -> None:
        case = await store.get_case(conn, ev.case_id)
        if case is None or case["closed"]:
            return
        await store.set_case(conn, ev.case_id, services_linked=True)
        if case["discharged_at"] is not None and case["hold_reason"] is None:
            await self._plan_post_visit(
                conn, record, case, case["discharged_at"], datetime.now(UTC)
            )

    async def _closed(
        self, conn: asyncpg.Connection, record: Record, ev: CaseCancelled | CaseFailed | CaseClosed
    ) -> None:
        await self._close(conn, ev.case_id)

    async def _close(self, conn: asyncpg.Connection, case_id: str) -> None:
        if await store.get_case(conn, case_id) is not None:
            await store.set_case(conn, case_id, closed=True)
            await tasks.cancel_live(conn, case_id)

    async def _plan_post_visit(
        self,
        conn: asyncpg.Connection,
        record: Record,
        case: asyncpg.Record,
        discharged_at: datetime,
        now: datetime,
    ) -> None:
        start, end = domain.post_discharge_window(discharged_at)
        created = await tasks.create(
            conn,
            case_id=case["case_id"],
            kind=domain.POST_DISCHARGE,
            centre_id=case["centre_id"],
            priority=case["priority"],
            due_at=end,
            window_start=start,
        )
        if created is not None:
            await self._scheduled(conn, record, case, "post-discharge", start, end, now)

    async def _missed_pre_visit(
        self, conn: asyncpg.Connection, record: Record, case: asyncpg.Record, now: datetime
    ) -> None:
        await tasks.cancel_live(conn, case["case_id"], kinds=[domain.PRE_DISCHARGE])
        await emit(
            conn,
            VisitDone(
                **_base(case, now),
                kind="pre-discharge",
                outcome="missed",
                precautions_acknowledged=False,
            ),
            service=SERVICE,
            cause=record,
        )

    async def _hold(
        self,
        conn: asyncpg.Connection,
        record: Record | None,
        case: asyncpg.Record,
        reason: str,
        kinds: list[str],
        now: datetime,
    ) -> None:
        await tasks.suspend(conn, case["case_id"], kinds)
        await store.set_case(conn, case["case_id"], hold_reason=reason)
        await emit(
            conn,
            CaseOnHold(**_base(case, now), reason_code=reason),  # type: ignore[arg-type]
            service=SERVICE,
            cause=record,
        )

    async def _scheduled(
        self,
        conn: asyncpg.Connection,
        record: Record | None,
        case: asyncpg.Record,
        kind: str,
        start: datetime,
        end: datetime,
        now: datetime,
    ) -> None:
        await emit(
            conn,
            VisitScheduled(**_base(case, now), kind=kind, window_start=start, window_end=end),  # type: ignore[arg-type]
            service=SERVICE,
            cause=record,
        )


class Coordinator:
    """What a coordinator does with visit tasks; the interfaces call these."""

    def __init__(self, pool: asyncpg.Pool, *, max_contact_attempts: int = 3) -> None:
        self._pool = pool
        self._max_attempts = max_contact_attempts

    async def complete_visit(
        self,
        task_id: int,
        actor: str,
        *,
        precautions_acknowledged: bool,
        findings: list[str] | None = None,
        notes: str | None = None,
        now: datetime | None = None,
    ) -> tasks.Task:
        now = now or datetime.now(UTC)
        async with self._pool.acquire() as conn, conn.transaction():
            task = await tasks.complete(
                conn,
                task_id,
                actor,
                {
                    "reached": True,
                    "precautions_acknowledged": precautions_acknowledged,
                    "findings": list(findings or []),
                },
                now=now,
            )
            case = await self._case(conn, task)
            if notes:
                await store.add_notes(conn, task_id, notes)
            await emit(
                conn,
                VisitDone(
                    **_base(case, now),
                    kind=domain.VISIT_KIND[task.kind],  # type: ignore[arg-type]
                    precautions_acknowledged=precautions_acknowledged,
                    findings=list(findings or []),
                ),
                service=SERVICE,
            )
            return task

    async def contact_failed(
        self, task_id: int, actor: str, *, now: datetime | None = None
    ) -> tasks.Task:
        """One more attempt that did not reach the person; on hold as unreachable after the limit."""
        now = now or datetime.now(UTC)
        async with self._pool.acquire() as conn, conn.transaction():
            task = await tasks.record_attempt(conn, task_id, actor, {"reached": False}, now=now)
            if domain.unreachable(task.attempts, self._max_attempts):
                case = await self._case(conn, task)
                await tasks.suspend(conn, task.case_id, [task.kind])
                await store.set_case(conn, task.case_id, hold_reason="unreachable")
                await emit(
                    conn, CaseOnHold(**_base(case, now), reason_code="unreachable"), service=SERVICE
                )
                task = await tasks.get(conn, task_id)
            return task

    async def reopen(self, task_id: int, actor: str, *, now: datetime | None = None) -> tasks.Task:
        """Try an unreachable person again (new contact details, a new idea)."""
        now = now or datetime.now(UTC)
        async with self._pool.acquire() as conn, conn.transaction():
            task = await tasks.get(conn, task_id)
            case = await self._case(conn, task)
            if task.status != "suspended" or case["hold_reason"] != "unreachable":
                raise tasks.TaskError(f"task {task_id} is not on hold as unreachable")
            resumed = await tasks.resume(
                conn, task.case_id, task.kind, due_at=task.due_at, window_start=task.window_start
            )
            assert resumed is not None
            await conn.execute("UPDATE tasks SET attempts = 0 WHERE id = $1", task_id)
            await store.set_case(conn, task.case_id, hold_reason=None)
            kind = domain.VISIT_KIND[task.kind]
            await emit(
                conn,
                CaseResumed(**_base(case, now), kind=kind),  # type: ignore[arg-type]
                service=SERVICE,
            )
            await emit(
                conn,
                VisitScheduled(
                    **_base(case, now),
                    kind=kind,  # type: ignore[arg-type]
                    window_start=task.window_start or now,
                    window_end=task.due_at,
                ),
                service=SERVICE,
            )
            await tasks.audit(conn, task_id, actor, "reopen")
            return await tasks.get(conn, task_id)

    async def _case(self, conn: asyncpg.Connection, task: tasks.Task) -> asyncpg.Record:
        if task.kind not in domain.VISIT_KIND:
            raise tasks.TaskError(f"task {task.id} is not a visit")
        case = await store.get_case(conn, task.case_id)
        if case is None:
            raise tasks.TaskNotFound(f"no case for task {task.id}")
        return case
