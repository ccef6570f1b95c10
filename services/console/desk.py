"""The console's one door to the services: every read and every action is a
call to the owning service's HTTP API (referral and scheduling for tasks and
case facts, intake for personal details; services.console.clients). No rule is
decided here, and no database is touched: the services apply their use cases
and settings (lease length, contact-attempt limit) and scope everything to the
coordinator's centre. The console checks only what it alone knows: who is
signed in, who is a lead, who is a colleague.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.console.auth import User
from services.console.clients import OnBehalfOf, Services, gather_all
from services.console.errors import ConsoleError
from services.console.schemas import (
    SERVICE_OF,
    CarePlanResult,
    CaseFacts,
    CompleteOut,
    DeliveryResult,
    PersonalDetails,
    ReviewResult,
    Service,
    TaskDetailOut,
    TaskOut,
    TaskResult,
    VisitResult,
)
from services.lib.runtime.logging import get_logger

log = get_logger(__name__)
SERVICES: tuple[Service, ...] = ("referral", "scheduling")
LIVE = ("open", "claimed")
# What referral and scheduling keep of a case: ids and routing from both, the rest from one.
_SHARED_FACTS = ("hospital_id", "referral_id", "centre_id", "priority")
_REFERRAL_FACTS = (
    "fee_support",
    "requested_services",
    "policy_year",
    "district",
    "providers",
    "default_start",
    "lines",
)
_SCHEDULING_FACTS = (
    "reviewed",
    "expected_discharge_date",
    "discharged_at",
    "hold_reason",
    "services_linked",
)


@dataclass(frozen=True)
class TaskDetail:
    """The API's task detail, and what the task page adds (the care-plan form's
    starting quantities, from referral)."""

    out: TaskDetailOut
    default_quantities: dict[str, int] = field(default_factory=dict)


def on_behalf_of(user: User) -> OnBehalfOf:
    return OnBehalfOf(username=user.username, centre_id=user.centre_id, role=user.role)


class Desk:
    def __init__(self, services: Services) -> None:
        self.services = services

    # ------------------------------------------------------------------ reading

    async def queue(
        self,
        user: User,
        *,
        kinds: list[str] | None = None,
        statuses: tuple[str, ...] = LIVE,
        overdue_only: bool = False,
        limit: int = 200,
    ) -> list[TaskOut]:
        """The centre's tasks from both services: urgent first, then by deadline."""
        calls = []
        for service in SERVICES:
            wanted = None if kinds is None else [k for k in kinds if SERVICE_OF[k] == service]
            if wanted == []:
                continue
            params: dict[str, Any] = {
                "status": ",".join(statuses),
                "overdue": "true" if overdue_only else "false",
                "limit": limit,
            }
            if wanted:
                params["kind"] = ",".join(wanted)
            calls.append(self.services.owner(service).get("/v1/queue", on_behalf_of(user), params))
        answers = await gather_all(*calls)
        found = [TaskOut.model_validate(t) for answer in answers for t in answer["tasks"]]
        found.sort(key=lambda t: (t.priority != "urgent", t.due_at, t.service, t.id))
        return found[:limit]

    async def task(self, user: User, service: Service, task_id: int) -> TaskOut:
        """The task, if it is the user's centre's (the service says 404 otherwise)."""
        answer = await self.services.owner(service).get(f"/v1/tasks/{task_id}", on_behalf_of(user))
        return TaskOut.model_validate(answer)

    async def detail(
        self, user: User, service: Service, task_id: int, *, purpose: str
    ) -> TaskDetail:
        """The task, the case's facts and tasks, and the personal details (audited by intake)."""
        task = await self.task(user, service, task_id)
        who = on_behalf_of(user)
        # Facts first, personal details last: a view that fails leaves no audit row behind.
        referral, scheduling = await gather_all(
            self._case(self.services.referral.get(f"/v1/cases/{task.case_id}", who)),
            self._case(self.services.scheduling.get(f"/v1/cases/{task.case_id}", who)),
        )
        facts: dict[str, Any] = {"case_id": task.case_id}
        defaults: dict[str, int] = {}
        case_tasks: list[TaskOut] = []
        if referral is not None:
            known = referral["facts"]
            facts.update({k: known.get(k) for k in (*_SHARED_FACTS, *_REFERRAL_FACTS)})
            facts["closed"] = known.get("closed")
            defaults = {str(k): int(v) for k, v in known.get("default_quantities", {}).items()}
            case_tasks += [TaskOut.model_validate(t) for t in referral["tasks"]]
        if scheduling is not None:
            known = scheduling["facts"]
            for k in _SHARED_FACTS:
                if facts.get(k) is None:
                    facts[k] = known.get(k)
            facts.update({k: known.get(k) for k in _SCHEDULING_FACTS})
            facts["closed"] = bool(known.get("closed") or facts.get("closed"))
            case_tasks += [TaskOut.model_validate(t) for t in scheduling["tasks"]]
        case_tasks.sort(key=lambda t: (t.created_at, t.service, t.id))
        personal = await self._case(
            self.services.intake.get(
                f"/v1/cases/{task.case_id}/personal", who, {"purpose": purpose}
            )
        )
        log.info(
            "case details viewed",
            actor=user.username,
            case_id=task.case_id,
            task_id=task.id,
            service=service,
            purpose=purpose,
        )
        return TaskDetail(
            out=TaskDetailOut(
                task=task,
                case=CaseFacts(**{k: v for k, v in facts.items() if v is not None}),
                case_tasks=case_tasks,
                personal=PersonalDetails.model_validate(personal) if personal else None,
            ),
            default_quantities=defaults,
        )

    @staticmethod
    async def _case(call: Any) -> Any:
        """A case's answer, or None when the service does not know the case (yet):
        scheduling learns of a case on its own time."""
        try:
            return await call
        except ConsoleError as exc:
            if exc.status == 404:
                return None
            raise

    # ------------------------------------------------------------------ acting

    async def claim(self, user: User, service: Service, task_id: int) -> TaskOut:
        """Claim (or renew) under the owning service's lease."""
        return await self._act(user, service, task_id, "claim")

    async def release(self, user: User, service: Service, task_id: int) -> TaskOut:
        return await self._act(user, service, task_id, "release")

    async def reassign(
        self, user: User, service: Service, task_id: int, to: User | None
    ) -> TaskOut:
        if not user.is_lead:
            raise ConsoleError(403, "forbidden", "only a lead may hand a task to someone else")
        await self.task(user, service, task_id)
        if to is None or to.centre_id != user.centre_id:
            raise ConsoleError(422, "invalid-request", "`to` must be a colleague of your centre")
        return await self._act(user, service, task_id, "reassign", {"to": to.username})

    async def complete(
        self, user: User, service: Service, task_id: int, result: TaskResult
    ) -> CompleteOut:
        task = await self.task(user, service, task_id)
        fits = (
            (task.kind == "review" and isinstance(result, ReviewResult))
            or (task.kind == "care-plan" and isinstance(result, CarePlanResult))
            or (task.kind == "delivery" and isinstance(result, DeliveryResult))
            or (
                task.kind in ("pre-discharge-visit", "post-discharge-visit")
                and isinstance(result, VisitResult)
            )
        )
        if not fits:
            raise ConsoleError(422, "invalid-request", _expected_shape(task.kind))
        answer = await self.services.owner(service).post(
            f"/v1/tasks/{task_id}/complete", on_behalf_of(user), result.model_dump(mode="json")
        )
        done = CompleteOut.model_validate(answer)
        _did(user, "complete", done.task, outcome=done.outcome)
        return done

    async def _act(
        self,
        user: User,
        service: Service,
        task_id: int,
        action: str,
        body: dict[str, Any] | None = None,
    ) -> TaskOut:
        answer = await self.services.owner(service).post(
            f"/v1/tasks/{task_id}/{action}", on_behalf_of(user), body
        )
        task = TaskOut.model_validate(answer)
        _did(user, action, task, **({"to": body["to"]} if body else {}))
        return task


def _did(user: User, action: str, task: TaskOut, **extra: str) -> None:
    log.info(
        "task " + action,
        actor=user.username,
        centre_id=user.centre_id,
        service=task.service,
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
            "a care plan takes {lines: [{service, quantity, provider_id, planned_start}]} "
            "or {decision: waitlist|could-not-deliver}"
        )
    if kind == "delivery":
        return (
            "a delivery takes {line, started_on} or {line, ended_on, delivered_units, end_reason}"
        )
    return "a visit takes {reached: true, precautions_acknowledged, findings, notes} or {reached: false}"
