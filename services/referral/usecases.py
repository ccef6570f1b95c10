"""Referral's use cases.

Reacting to case events (subscriber side): open the review task for every
accepted case, the care-plan task after the pre-discharge visit, close on
cancellation. Coordinators' work (interface side, `Coordinator`): complete a
review, set a care plan, put a plan on the waitlist or report it could not be
delivered. Each runs in one transaction with the events it emits.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args

import asyncpg

from contracts.intake import CaseAccepted, CaseCancelled
from contracts.outcome import CaseClosed
from contracts.referral import (
    CarePlanSet,
    CaseFailed,
    CaseWaitlisted,
    ReviewCompleted,
    ReviewRefusal,
    ServicesLinked,
)
from contracts.scheduling import VisitDone
from services.lib.policy import PolicyBook, PolicyIncomplete
from services.lib.runtime.events import CaseEventRouter, emit
from services.lib.runtime.logging import get_logger
from services.lib.runtime.pipeline import Handler, Record
from services.lib.tasks import operations as tasks
from services.referral import domain, store

log = get_logger(__name__)
SERVICE = "referral"
REVIEW = "review"
CARE_PLAN = "care-plan"
# A care plan is due within 72 hours of the pre-discharge visit (programme design).
CARE_PLAN_WITHIN = timedelta(hours=72)
WAITLIST_RETRY = timedelta(days=7)


class PlanRejected(tasks.TaskError):
    """The plan cannot be set as asked (unknown service, a stay over 14 days …)."""

    code = "invalid-plan"


class PolicyMissing(tasks.TaskError):
    """The case's policy year lacks a value the plan needs (e.g. 2024 unit prices):
    reported, never guessed; an operator completes the policy file."""

    code = "policy-incomplete"


class InvalidDecision(tasks.TaskError):
    code = "invalid-request"


class CaseEvents:
    """The subscriber side: tasks appear as the case moves."""

    def handler(self) -> Handler:
        return CaseEventRouter(
            {
                CaseAccepted: self._accepted,
                VisitDone: self._visit_done,
                CaseCancelled: self._closed,
                CaseClosed: self._closed,
            }
        )

    async def _accepted(self, conn: asyncpg.Connection, record: Record, ev: CaseAccepted) -> None:
        added = await store.add_case(
            conn,
            case_id=ev.case_id,
            hospital_id=ev.hospital_id,
            referral_id=ev.referral_id,
            person_id=ev.person_id,
            centre_id=ev.centre_id,
            policy_year=ev.policy_year,
            fee_support=ev.fee_support,
            priority=ev.priority,
            requested_services=[str(s) for s in ev.requested_services],
        )
        if added:
            await tasks.create(
                conn,
                case_id=ev.case_id,
                kind=REVIEW,
                centre_id=ev.centre_id,
                priority=ev.priority,
                due_at=ev.review_deadline,
            )

    async def _visit_done(self, conn: asyncpg.Connection, record: Record, ev: VisitDone) -> None:
        if ev.kind != "pre-discharge":
            return
        case = await store.lock_case(conn, ev.case_id)
        if case is None or case.closed:
            return
        await tasks.create(
            conn,
            case_id=ev.case_id,
            kind=CARE_PLAN,
            centre_id=case.centre_id,
            priority=case.priority,
            due_at=ev.occurred_at + CARE_PLAN_WITHIN,
        )

    async def _closed(
        self, conn: asyncpg.Connection, record: Record, ev: CaseCancelled | CaseClosed
    ) -> None:
        if await store.lock_case(conn, ev.case_id) is not None:
            await store.close_case(conn, ev.case_id)
            await tasks.cancel_live(conn, ev.case_id)


class Coordinator:
    """What a coordinator does with referral's tasks; the interfaces call these.

    Each action locks the task's case before the task (`_lock_case_of`), the order
    the case-event consumers use too, so the two never deadlock."""

    def __init__(self, pool: asyncpg.Pool, policies: PolicyBook) -> None:
        self._pool = pool
        self._policies = policies

    async def complete_review(
        self,
        task_id: int,
        actor: str,
        *,
        decision: Literal["eligible", "ineligible"],
        reason_code: str | None = None,
        now: datetime | None = None,
    ) -> tasks.Task:
        if decision == "ineligible" and reason_code not in get_args(ReviewRefusal):
            raise InvalidDecision(
                f"an ineligible decision needs one of the reason codes {', '.join(get_args(ReviewRefusal))}"
            )
        if decision == "eligible":
            reason_code = None
        now = now or datetime.now(UTC)
        async with self._pool.acquire() as conn, conn.transaction():
            locked = await _lock_case_of(conn, task_id)
            task = await tasks.complete(
                conn, task_id, actor, {"decision": decision, "reason_code": reason_code}, now=now
            )
            case = _case_of(task, locked, REVIEW)
            await emit(
                conn,
                ReviewCompleted(
                    **_base(case, now),
                    decision=decision,
                    reason_code=reason_code,  # type: ignore[arg-type]
                ),
                service=SERVICE,
            )
            if decision == "ineligible":
                await store.close_case(conn, case.case_id)
                await tasks.cancel_live(conn, case.case_id)
            return task

    async def set_care_plan(
        self,
        task_id: int,
        actor: str,
        *,
        lines: Sequence[tuple[str, int]] | None = None,
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """Price the plan, fit it under the person's remaining annual cap, link services.

        Nothing fits → the case fails with `cap-exhausted`; part fits → a partial plan.
        `lines` default to a first week of each requested service.
        """
        now = now or datetime.now(UTC)
        async with self._pool.acquire() as conn, conn.transaction():
            locked = await _lock_case_of(conn, task_id)
            task = await tasks.held(conn, task_id, actor, now=now)
            case = _case_of(task, locked, CARE_PLAN)
            requested = list(lines) if lines else domain.default_request(case.requested_services)
            policy = self._policies.for_year(case.policy_year)
            used = await store.used_this_year(conn, case.person_id, case.policy_year)
            try:
                fit = domain.plan(
                    policy,
                    requested=requested,
                    fee_support=case.fee_support,
                    already_used_krw=used,
                )
            except PolicyIncomplete as exc:
                raise PolicyMissing(str(exc)) from exc
            except ValueError as exc:  # RuleError: a stay over 14 days, an unknown code …
                raise PlanRejected(str(exc)) from exc
            base = _base(case, now)
            if fit.nothing_fits:
                await tasks.complete(conn, task_id, actor, {"decision": "cap-exhausted"}, now=now)
                await emit(
                    conn,
                    CaseFailed(
                        **base,
                        reason_code="cap-exhausted",
                        annual_cap_krw=fit.annual_cap_krw,
                        cap_remaining_krw=fit.cap_remaining_before_krw,
                    ),
                    service=SERVICE,
                )
                await self._close(conn, case.case_id)
                return {"outcome": "cap-exhausted"}
            plan_lines = domain.plan_lines(fit)
            await tasks.complete(
                conn,
                task_id,
                actor,
                {"decision": "plan", "lines": [line.model_dump() for line in plan_lines]},
                now=now,
            )
            await store.add_plan(
                conn,
                case_id=case.case_id,
                person_id=case.person_id,
                policy_year=case.policy_year,
                lines=[line.model_dump() for line in plan_lines],
                total_krw=fit.total_krw,
                publicly_paid_krw=fit.district_total_krw,
                self_paid_krw=fit.resident_total_krw,
            )
            await emit(
                conn,
                CarePlanSet(
                    **base,
                    lines=plan_lines,
                    total_krw=fit.total_krw,
                    publicly_paid_krw=fit.district_total_krw,
                    self_paid_krw=fit.resident_total_krw,
                    partial=fit.partial,
                    paid_by=fit.paid_by,
                    annual_cap_krw=fit.annual_cap_krw,
                    cap_remaining_krw=fit.cap_remaining_after_krw,
                ),
                service=SERVICE,
            )
            await emit(conn, ServicesLinked(**base), service=SERVICE)
            return {"outcome": "plan", "partial": fit.partial, "total_krw": fit.total_krw}

    async def waitlist(
        self, task_id: int, actor: str, *, now: datetime | None = None
    ) -> tasks.Task:
        """No provider can take the plan now: on hold, the task returns to the queue later."""
        now = now or datetime.now(UTC)
        async with self._pool.acquire() as conn, conn.transaction():
            locked = await _lock_case_of(conn, task_id)
            task = await tasks.held(conn, task_id, actor, now=now)
            case = _case_of(task, locked, CARE_PLAN)
            task = await tasks.release(conn, task_id, actor, now=now)
            await tasks.replan(conn, case.case_id, CARE_PLAN, due_at=now + WAITLIST_RETRY)
            await emit(
                conn,
                CaseWaitlisted(**_base(case, now), retry_at=now + WAITLIST_RETRY),
                service=SERVICE,
            )
            return task

    async def could_not_deliver(
        self, task_id: int, actor: str, *, now: datetime | None = None
    ) -> tasks.Task:
        now = now or datetime.now(UTC)
        async with self._pool.acquire() as conn, conn.transaction():
            locked = await _lock_case_of(conn, task_id)
            task = await tasks.complete(
                conn, task_id, actor, {"decision": "could-not-deliver"}, now=now
            )
            case = _case_of(task, locked, CARE_PLAN)
            await emit(
                conn,
                CaseFailed(**_base(case, now), reason_code="could-not-deliver"),
                service=SERVICE,
            )
            await self._close(conn, case.case_id)
            return task

    async def _close(self, conn: asyncpg.Connection, case_id: str) -> None:
        await store.close_case(conn, case_id)
        await tasks.cancel_live(conn, case_id)


async def _lock_case_of(conn: asyncpg.Connection, task_id: int) -> store.Case | None:
    """Lock the task's case, then the task: the one lock order (see
    services.lib.tasks.operations). The task operation that follows re-checks the
    task's state under the lock."""
    case = await store.lock_case(conn, await tasks.case_id_of(conn, task_id))
    await tasks.lock(conn, task_id)
    return case


def _case_of(task: tasks.Task, case: store.Case | None, kind: str) -> store.Case:
    if task.kind != kind:
        raise tasks.TaskError(f"task {task.id} is a {task.kind} task, not {kind}")
    if case is None:
        raise tasks.TaskNotFound(f"no case for task {task.id}")
    return case


def _base(case: store.Case, now: datetime) -> dict[str, Any]:
    return {
        "case_id": case.case_id,
        "hospital_id": case.hospital_id,
        "referral_id": case.referral_id,
        "occurred_at": now,
    }
