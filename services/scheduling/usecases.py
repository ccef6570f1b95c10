"""Scheduling's use cases.

Subscriber side (`CaseEvents`): plan the pre-discharge visit once the review
found the case eligible, re-plan it when the discharge date moves (on hold
when it moves beyond the horizon), mark it missed if the patient leaves first,
and plan the post-discharge visit once services are ordered and the patient is
home; readmission suspends it. Interface side (`Coordinator`): record a visit,
a failed contact attempt (unreachable after the configured number), reopen.
Acceptances are taken as a set (issue 12): a batch's run of them adds its cases
with one statement; the other events go one by one in their place.

The rules are in `domain` (pure); a use case locks the case, asks the domain,
and writes its decision (the case, the tasks, the outbox) in one transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from contracts.intake import (
    CaseAccepted,
    CaseCancelled,
    CaseDischarged,
    CaseReadmitted,
    DischargeDateChanged,
    PersonalDataDestroyed,
)
from contracts.outcome import CaseClosed
from contracts.referral import CaseFailed, ReviewCompleted, ServicesLinked, ServicesOrdered
from contracts.scheduling import VisitDone
from services.lib.policy import SEOUL_TZ, Findings, PolicyBook, PolicyNotFound, load_findings
from services.lib.policy.deadlines import DeadlineRules
from services.lib.runtime.events import CaseEventRouter, emit
from services.lib.runtime.logging import get_logger
from services.lib.runtime.pipeline import Handler, Record, Scope
from services.lib.tasks import operations as tasks
from services.lib.tasks.privacy import forget_task_notes
from services.scheduling import domain, store
from services.scheduling.domain import Case, Decision

log = get_logger(__name__)

SERVICE = "scheduling"
_LIVE = ("open", "claimed", "suspended")


async def _live(conn: asyncpg.Connection, case_id: str) -> dict[str, str]:
    """The status of the case's live visit task of each kind (the latest one wins)."""
    return {t.kind: t.status for t in await tasks.for_case(conn, case_id) if t.status in _LIVE}


async def _apply(
    conn: asyncpg.Connection, before: Case, decision: Decision, cause: Record | None
) -> None:
    """Write a decision: the case row, then its tasks and events in the decided order.

    The case row is locked already (`store.lock_case`), so writing it first takes
    no new lock; the tasks' locks come after it, in the one lock order."""
    case = decision.case
    if case != before:
        await store.save_case(conn, case)
    if case.expected_discharge_date != before.expected_discharge_date:
        await tasks.set_expected_discharge(conn, case.case_id, case.expected_discharge_date)
    for step in decision.steps:
        if isinstance(step, domain.CreateTask):
            created = await tasks.create(
                conn,
                case_id=case.case_id,
                kind=step.kind,
                centre_id=case.centre_id,
                priority=case.priority,
                due_at=step.due_at,
                window_start=step.window_start,
                hospital_id=case.hospital_id,
                expected_discharge_date=case.expected_discharge_date,
            )
            if created is not None and step.if_created is not None:
                await emit(conn, step.if_created, service=SERVICE, cause=cause)
        elif isinstance(step, domain.ReplanTask):
            await tasks.replan(
                conn, case.case_id, step.kind, due_at=step.due_at, window_start=step.window_start
            )
        elif isinstance(step, domain.ResumeTask):
            await tasks.resume(
                conn, case.case_id, step.kind, due_at=step.due_at, window_start=step.window_start
            )
        elif isinstance(step, domain.SuspendTasks):
            await tasks.suspend(conn, case.case_id, list(step.kinds))
        elif isinstance(step, domain.CancelTasks):
            kinds = list(step.kinds) if step.kinds is not None else None
            await tasks.cancel_live(conn, case.case_id, kinds=kinds)
        else:
            await emit(conn, step.event, service=SERVICE, cause=cause)


class CaseEvents:
    """`policies`: the yearly policies, whose `deadlines` date the visits (the case's
    policy year, as intake chose it); None: the programme's rules (domain.PROGRAMME_RULES)."""

    def __init__(self, *, horizon_days: int, policies: PolicyBook | None = None) -> None:
        self._horizon = horizon_days
        self._policies = policies

    def _rules(self, case: Case, now: datetime) -> DeadlineRules:
        if self._policies is None:
            return domain.PROGRAMME_RULES
        try:
            if case.policy_year is not None and case.policy_year in self._policies.years:
                return self._policies.for_year(case.policy_year).deadlines
            # A case accepted before scheduling kept its policy year: today's policy.
            return self._policies.for_date(now.astimezone(SEOUL_TZ).date()).deadlines
        except PolicyNotFound:
            return domain.PROGRAMME_RULES

    def handler(self) -> Handler:
        return CaseEventRouter(
            {
                ReviewCompleted: self._reviewed,
                DischargeDateChanged: self._date_changed,
                CaseReadmitted: self._readmitted,
                CaseDischarged: self._discharged,
                ServicesOrdered: self._services_linked,
                # Written by a referral deployed before providers were named.
                ServicesLinked: self._services_linked,
                CaseCancelled: self._closed,
                CaseFailed: self._closed,
                CaseClosed: self._closed,
                PersonalDataDestroyed: self._personal_data_destroyed,
            },
            # Accepted cases come in long runs (every new referral): taken as a set.
            {CaseAccepted: self._accepted},
        )

    async def _accepted(
        self,
        conn: asyncpg.Connection,
        accepted: list[tuple[Record, CaseAccepted]],
        scope: Scope,
    ) -> None:
        """Accepted cases, a run of them at once (one alone is a run of one), added with
        one statement; a case accepted twice keeps its first acceptance, as one at a
        time. No visit yet: the pre-discharge visit waits for the review."""
        cases = []
        for record, ev in accepted:
            with scope(record):  # the record's span, in its own trace
                cases.append(
                    Case(
                        case_id=ev.case_id,
                        hospital_id=ev.hospital_id,
                        referral_id=ev.referral_id,
                        centre_id=ev.centre_id,
                        priority=ev.priority,
                        expected_discharge_date=ev.expected_discharge_date,
                        policy_year=ev.policy_year,
                    )
                )
        await store.add_cases(conn, cases)

    async def _reviewed(
        self, conn: asyncpg.Connection, record: Record, ev: ReviewCompleted
    ) -> None:
        case = await store.lock_case(conn, ev.case_id)
        if case is None:
            return
        now = datetime.now(UTC)
        decision = domain.on_review(
            case,
            eligible=ev.decision == "eligible",
            now=now,
            horizon_days=self._horizon,
            rules=self._rules(case, now),
        )
        await _apply(conn, case, decision, record)

    async def _date_changed(
        self, conn: asyncpg.Connection, record: Record, ev: DischargeDateChanged
    ) -> None:
        case = await store.lock_case(conn, ev.case_id)
        if case is None:
            return
        now = datetime.now(UTC)
        decision = domain.on_discharge_date_changed(
            case,
            await _live(conn, ev.case_id),
            ev.expected_discharge_date,
            now=now,
            horizon_days=self._horizon,
            rules=self._rules(case, now),
        )
        await _apply(conn, case, decision, record)

    async def _readmitted(
        self, conn: asyncpg.Connection, record: Record, ev: CaseReadmitted
    ) -> None:
        case = await store.lock_case(conn, ev.case_id)
        if case is None:
            return
        decision = domain.on_readmitted(case, ev.expected_discharge_date, now=datetime.now(UTC))
        await _apply(conn, case, decision, record)

    async def _discharged(
        self, conn: asyncpg.Connection, record: Record, ev: CaseDischarged
    ) -> None:
        case = await store.lock_case(conn, ev.case_id)
        if case is None:
            return
        now = datetime.now(UTC)
        decision = domain.on_discharged(
            case,
            await _live(conn, ev.case_id),
            ev.discharged_at,
            now=now,
            rules=self._rules(case, now),
        )
        await _apply(conn, case, decision, record)

    async def _services_linked(
        self, conn: asyncpg.Connection, record: Record, ev: ServicesLinked | ServicesOrdered
    ) -> None:
        case = await store.lock_case(conn, ev.case_id)
        if case is None:
            return
        now = datetime.now(UTC)
        decision = domain.on_services_linked(case, now=now, rules=self._rules(case, now))
        await _apply(conn, case, decision, record)

    async def _closed(
        self, conn: asyncpg.Connection, record: Record, ev: CaseCancelled | CaseFailed | CaseClosed
    ) -> None:
        case = await store.lock_case(conn, ev.case_id)
        if case is None:
            return
        await _apply(conn, case, domain.close(case), record)

    async def _personal_data_destroyed(
        self, conn: asyncpg.Connection, record: Record, ev: PersonalDataDestroyed
    ) -> None:
        """Intake destroyed the case's personal data (PIPA): the visit notes and task
        notes people typed about it go too; findings codes and dates stay."""
        notes = await store.delete_visit_notes(conn, ev.case_id)
        audit = await forget_task_notes(conn, ev.case_id)
        log.info("free text of a case deleted", case_id=ev.case_id, notes=notes, audit_notes=audit)


class InvalidVisit(tasks.TaskError):
    """The visit cannot be recorded as given (a finding that is not a vocabulary code)."""

    code = "invalid-request"


class NotUnreachable(tasks.TaskError):
    """Only a visit on hold as unreachable can be reopened."""

    code = "invalid-state"


class Coordinator:
    """What a coordinator does with visit tasks; the interfaces call these.

    Each action locks the task's case before the task (see `_lock`), the order the
    case-event consumers use too, so the two never deadlock. `findings`: the findings
    vocabulary (deploy/config/findings.yaml unless given)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        max_contact_attempts: int = 3,
        findings: Findings | None = None,
    ) -> None:
        self._pool = pool
        self._max_attempts = max_contact_attempts
        self._findings = findings if findings is not None else load_findings()

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
        """Record a visit that reached the person. `findings` are codes of the findings
        vocabulary (anything else is refused, InvalidVisit); they travel on care.cases.
        `notes`, free text, stay in scheduling's store (visit_notes) and travel nowhere."""
        now = now or datetime.now(UTC)
        codes = list(dict.fromkeys(findings or []))
        problems = domain.finding_problems(codes, self._findings)
        if problems:
            raise InvalidVisit("; ".join(problems))
        async with self._pool.acquire() as conn, conn.transaction():
            _, locked = await self._lock(conn, task_id)
            task = await tasks.complete(
                conn,
                task_id,
                actor,
                {
                    "reached": True,
                    "precautions_acknowledged": precautions_acknowledged,
                    "findings": codes,
                },
                now=now,
            )
            case = _visit_case(task, locked)
            if notes:
                await store.add_notes(conn, task_id, notes)
            await emit(
                conn,
                VisitDone(
                    **domain.base(case, now),
                    kind=domain.VISIT_KIND[task.kind],
                    precautions_acknowledged=precautions_acknowledged,
                    findings=codes,
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
            _, locked = await self._lock(conn, task_id)
            task = await tasks.record_attempt(conn, task_id, actor, {"reached": False}, now=now)
            case = _visit_case(task, locked)
            decision = domain.on_contact_failed(
                case, task.kind, task.attempts, max_attempts=self._max_attempts, now=now
            )
            if not decision.steps:
                return task
            await _apply(conn, case, decision, None)
            return await tasks.get(conn, task_id)  # suspended now

    async def reopen(
        self, task_id: int, actor: str, *, note: str | None = None, now: datetime | None = None
    ) -> tasks.Task:
        """Try an unreachable person again (new contact details, a new idea): audited
        with the hold's reason (`unreachable`) and the coordinator's note, which stays
        in scheduling's store; the hospital hears the case resume."""
        now = now or datetime.now(UTC)
        async with self._pool.acquire() as conn, conn.transaction():
            task, locked = await self._lock(conn, task_id)
            case = _visit_case(task, locked)
            decision = domain.reopen(
                case,
                task.kind,
                task.status,
                due_at=task.due_at,
                window_start=task.window_start,
                now=now,
            )
            if decision is None:
                raise NotUnreachable(f"task {task_id} is not on hold as unreachable")
            await _apply(conn, case, decision, None)
            await tasks.reset_attempts(conn, task_id)
            await tasks.audit(conn, task_id, actor, "reopen", reason_code="unreachable", note=note)
            return await tasks.get(conn, task_id)

    @staticmethod
    async def _lock(conn: asyncpg.Connection, task_id: int) -> tuple[tasks.Task, Case | None]:
        """Lock the task's case, then the task: the one lock order (see
        services.lib.tasks.operations). The task operation that follows re-checks
        the task's state under the lock."""
        case = await store.lock_case(conn, await tasks.case_id_of(conn, task_id))
        return await tasks.lock(conn, task_id), case


def _visit_case(task: tasks.Task, case: Case | None) -> Case:
    if task.kind not in domain.VISIT_KIND:
        raise tasks.TaskError(f"task {task.id} is not a visit")
    if case is None:
        raise tasks.TaskNotFound(f"no case for task {task.id}")
    return case
