"""The console's one door to the services: every read and every action goes
through the owning service's use cases (services.lib.tasks, referral's and
scheduling's `Coordinator`, intake's queries). No rule is decided here; this
module only checks who may see what: a coordinator sees their own centre's
tasks and cases, and a task of another centre does not exist for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from services.console.auth import User
from services.console.schemas import (
    SERVICE_OF,
    CarePlanResult,
    CaseFacts,
    CompleteOut,
    PersonalDetails,
    ReviewResult,
    Service,
    TaskDetailOut,
    TaskOut,
    TaskResult,
    VisitResult,
)
from services.intake import queries as intake_queries
from services.lib.policy import PolicyBook
from services.lib.runtime.logging import get_logger
from services.lib.tasks import operations as tasks
from services.referral import store as referral_store
from services.referral.usecases import Coordinator as ReferralDesk
from services.scheduling import store as scheduling_store
from services.scheduling.usecases import Coordinator as VisitDesk

log = get_logger(__name__)
SERVICES: tuple[Service, ...] = ("referral", "scheduling")


class ConsoleError(Exception):
    """An answer for the coordinator: HTTP status, stable code, message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


# The task library's and use cases' stable codes, as HTTP statuses.
_STATUS = {
    "not-found": 404,
    "claimed-by-other": 409,
    "lease-expired": 409,
    "not-claimed": 409,
    "task-closed": 409,
    "invalid-plan": 422,
    "invalid-request": 422,
    "policy-incomplete": 409,
}


def as_console_error(exc: tasks.TaskError) -> ConsoleError:
    if isinstance(exc, tasks.TaskNotFound):
        return ConsoleError(404, "not-found", "no such task")
    return ConsoleError(_STATUS.get(exc.code, 409), exc.code, str(exc))


@dataclass(frozen=True)
class Pools:
    intake: asyncpg.Pool
    referral: asyncpg.Pool
    scheduling: asyncpg.Pool

    def of(self, service: Service) -> asyncpg.Pool:
        return self.referral if service == "referral" else self.scheduling


class Desk:
    def __init__(
        self,
        pools: Pools,
        policies: PolicyBook,
        *,
        lease: timedelta,
        max_contact_attempts: int,
    ) -> None:
        self.pools = pools
        self.lease = lease
        self.referral = ReferralDesk(pools.referral, policies)
        self.visits = VisitDesk(pools.scheduling, max_contact_attempts=max_contact_attempts)

    # ------------------------------------------------------------------ reading

    async def queue(
        self,
        user: User,
        *,
        kinds: list[str] | None = None,
        statuses: tuple[str, ...] = tasks.LIVE,
        overdue_only: bool = False,
        limit: int = 200,
        now: datetime | None = None,
    ) -> list[TaskOut]:
        """The centre's tasks from both services: urgent first, then by deadline."""
        now = now or datetime.now(UTC)
        found: list[TaskOut] = []
        for service in SERVICES:
            wanted = None if kinds is None else [k for k in kinds if SERVICE_OF[k] == service]
            if wanted == []:
                continue
            async with self.pools.of(service).acquire() as conn:
                rows = await tasks.queue(
                    conn,
                    user.centre_id,
                    now=now,
                    kinds=wanted,
                    statuses=statuses,
                    overdue_only=overdue_only,
                    limit=limit,
                )
            found.extend(TaskOut.of(service, t, now) for t in rows)
        found.sort(key=lambda t: (t.priority != "urgent", t.due_at, t.service, t.id))
        return found[:limit]

    async def task(self, user: User, service: Service, task_id: int) -> tasks.Task:
        """The task, if it is the user's centre's; otherwise it does not exist for them."""
        async with self.pools.of(service).acquire() as conn:
            try:
                task = await tasks.get(conn, task_id)
            except tasks.TaskNotFound:
                task = None
        if task is None or task.centre_id != user.centre_id:
            raise ConsoleError(404, "not-found", "no such task")
        return task

    async def detail(
        self, user: User, service: Service, task_id: int, *, purpose: str
    ) -> TaskDetailOut:
        """The task, the case's facts and tasks, and the personal details (audited)."""
        now = datetime.now(UTC)
        task = await self.task(user, service, task_id)
        facts: dict[str, Any] = {"case_id": task.case_id}
        case_tasks: list[TaskOut] = []
        async with self.pools.referral.acquire() as conn:
            row = await referral_store.get_case(conn, task.case_id)
            if row is not None:
                facts.update(
                    {
                        k: row[k]
                        for k in (
                            "hospital_id",
                            "referral_id",
                            "centre_id",
                            "priority",
                            "fee_support",
                            "requested_services",
                            "policy_year",
                            "closed",
                        )
                    }
                )
            case_tasks += [
                TaskOut.of("referral", t, now) for t in await tasks.for_case(conn, task.case_id)
            ]
        async with self.pools.scheduling.acquire() as conn:
            row = await scheduling_store.get_case(conn, task.case_id)
            if row is not None:
                for k in ("hospital_id", "referral_id", "centre_id", "priority"):
                    facts.setdefault(k, row[k])
                facts.update(
                    {
                        "reviewed": row["reviewed"],
                        "expected_discharge_date": row["expected_discharge_date"],
                        "discharged_at": row["discharged_at"],
                        "hold_reason": row["hold_reason"],
                        "services_linked": row["services_linked"],
                        "closed": bool(row["closed"] or facts.get("closed")),
                    }
                )
            case_tasks += [
                TaskOut.of("scheduling", t, now) for t in await tasks.for_case(conn, task.case_id)
            ]
        case_tasks.sort(key=lambda t: (t.created_at, t.service, t.id))
        # The centre was checked on the task: the case is this user's centre's case.
        async with self.pools.intake.acquire() as conn:
            personal = await intake_queries.case_details(
                conn, task.case_id, viewer=user.username, purpose=purpose
            )
        log.info(
            "case details viewed",
            actor=user.username,
            case_id=task.case_id,
            task_id=task.id,
            service=service,
            purpose=purpose,
        )
        return TaskDetailOut(
            task=TaskOut.of(service, task, now),
            case=CaseFacts(**facts),
            case_tasks=case_tasks,
            personal=PersonalDetails.model_validate(personal) if personal else None,
        )

    # ------------------------------------------------------------------ acting

    async def claim(self, user: User, service: Service, task_id: int) -> TaskOut:
        await self.task(user, service, task_id)
        now = datetime.now(UTC)
        async with self.pools.of(service).acquire() as conn, conn.transaction():
            task = await self._run(
                tasks.claim(conn, task_id, user.username, now=now, lease=self.lease)
            )
        self._did(user, "claim", service, task)
        return TaskOut.of(service, task, now)

    async def release(self, user: User, service: Service, task_id: int) -> TaskOut:
        await self.task(user, service, task_id)
        now = datetime.now(UTC)
        async with self.pools.of(service).acquire() as conn, conn.transaction():
            task = await self._run(tasks.release(conn, task_id, user.username, now=now))
        self._did(user, "release", service, task)
        return TaskOut.of(service, task, now)

    async def reassign(
        self, user: User, service: Service, task_id: int, to: User | None
    ) -> TaskOut:
        if not user.is_lead:
            raise ConsoleError(403, "forbidden", "only a lead may hand a task to someone else")
        await self.task(user, service, task_id)
        if to is None or to.centre_id != user.centre_id:
            raise ConsoleError(422, "invalid-request", "`to` must be a colleague of your centre")
        now = datetime.now(UTC)
        async with self.pools.of(service).acquire() as conn, conn.transaction():
            task = await self._run(
                tasks.reassign(conn, task_id, user.username, to.username, now=now, lease=self.lease)
            )
        self._did(user, "reassign", service, task, to=to.username)
        return TaskOut.of(service, task, now)

    async def complete(
        self, user: User, service: Service, task_id: int, result: TaskResult
    ) -> CompleteOut:
        task = await self.task(user, service, task_id)
        outcome: str
        details: dict[str, Any] = {}
        if task.kind == "review" and isinstance(result, ReviewResult):
            await self._run(
                self.referral.complete_review(
                    task_id, user.username, decision=result.decision, reason_code=result.reason_code
                )
            )
            outcome = "reviewed"
            details = {"decision": result.decision, "reason_code": result.reason_code}
        elif task.kind == "care-plan" and isinstance(result, CarePlanResult):
            outcome, details = await self._care_plan(user, task_id, result)
        elif task.kind in ("pre-discharge-visit", "post-discharge-visit") and isinstance(
            result, VisitResult
        ):
            outcome = await self._visit(user, task_id, result)
        else:
            raise ConsoleError(422, "invalid-request", _expected_shape(task.kind))
        async with self.pools.of(service).acquire() as conn:
            done = await tasks.get(conn, task_id)
        self._did(user, "complete", service, done, outcome=outcome)
        return CompleteOut(
            task=TaskOut.of(service, done, datetime.now(UTC)), outcome=outcome, details=details
        )

    async def _care_plan(
        self, user: User, task_id: int, result: CarePlanResult
    ) -> tuple[str, dict[str, Any]]:
        if result.decision == "waitlist":
            await self._run(self.referral.waitlist(task_id, user.username))
            return "waitlisted", {}
        if result.decision == "could-not-deliver":
            await self._run(self.referral.could_not_deliver(task_id, user.username))
            return "could-not-deliver", {}
        lines = [(line.service.value, line.quantity) for line in result.lines or []] or None
        answer = await self._run(self.referral.set_care_plan(task_id, user.username, lines=lines))
        if answer.get("outcome") == "plan":
            return ("partial" if answer.get("partial") else "plan"), dict(answer)
        return str(answer.get("outcome")), dict(answer)

    async def _visit(self, user: User, task_id: int, result: VisitResult) -> str:
        if result.reached:
            await self._run(
                self.visits.complete_visit(
                    task_id,
                    user.username,
                    precautions_acknowledged=bool(result.precautions_acknowledged),
                    findings=list(result.findings),
                    notes=result.notes,
                )
            )
            return "visited"
        task = await self._run(self.visits.contact_failed(task_id, user.username))
        return "unreachable" if task.status == "suspended" else "contact-failed"

    @staticmethod
    async def _run(call: Any) -> Any:
        try:
            return await call
        except tasks.TaskError as exc:
            raise as_console_error(exc) from None

    @staticmethod
    def _did(user: User, action: str, service: Service, task: tasks.Task, **extra: str) -> None:
        log.info(
            "task " + action,
            actor=user.username,
            centre_id=user.centre_id,
            service=service,
            task_id=task.id,
            kind=task.kind,
            case_id=task.case_id,
            status=task.status,
            **extra,
        )


def _expected_shape(kind: str) -> str:
    if kind == "review":
        return "a review takes {decision: eligible|ineligible, reason_code}"
    if kind == "care-plan":
        return (
            "a care plan takes {lines: [{service, quantity}]} "
            "or {decision: waitlist|could-not-deliver}"
        )
    return "a visit takes {reached: true, precautions_acknowledged, findings, notes} or {reached: false}"
