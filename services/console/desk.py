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

from pydantic import BaseModel

from services.console.auth import User
from services.console.clients import OnBehalfOf, Services, gather_all
from services.console.contact import for_task
from services.console.errors import UNAVAILABLE, ConsoleError
from services.console.exit_history import exit_history
from services.console.schemas import (
    SERVICE_OF,
    CardOut,
    CarePlanResult,
    CaseFacts,
    CaseOut,
    CompleteOut,
    DeliveryResult,
    FoundCaseOut,
    PersonalDetails,
    QueueItemOut,
    ReviewResult,
    SearchIn,
    SearchOut,
    Service,
    TaskDetailOut,
    TaskOut,
    TaskResult,
    UpdateOut,
    VisitResult,
)
from services.lib.runtime.logging import get_logger
from services.lib.tasks.ordering import DEFAULT_SORT, Cursor, CursorError, Sort, merge_key

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


class _ServicePage(BaseModel):
    """A task service's page of its queue (services.lib.tasks.api), as the console reads it:
    rows ready for the queue, without their cards."""

    tasks: list[QueueItemOut]
    next: str | None = None


class _Cards(BaseModel):
    """Intake's cards of a page of cases."""

    cards: list[CardOut]


@dataclass(frozen=True)
class QueuePage:
    """A page of the merged queue and the cursor of the next one (None: the last)."""

    rows: list[QueueItemOut]
    next: str | None


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
    ) -> list[QueueItemOut]:
        """The first page of the centre's tasks from both services, urgent first."""
        page = await self.queue_page(
            user, kinds=kinds, statuses=statuses, overdue_only=overdue_only, limit=limit
        )
        return page.rows

    async def queue_page(
        self,
        user: User,
        *,
        kinds: list[str] | None = None,
        statuses: tuple[str, ...] = LIVE,
        overdue_only: bool = False,
        hospitals: list[str] | None = None,
        sort: Sort = DEFAULT_SORT,
        after: str | None = None,
        limit: int = 200,
    ) -> QueuePage:
        """A page of the centre's tasks from both services in `sort` order, after the
        cursor `after`, each row with its case's card (intake, one call for the page).

        Each service answers its own first `limit` rows after the one cursor (the
        cursor is the same for both: services.lib.tasks.ordering); the page is the
        first `limit` of their merge, so no row is skipped or shown twice across pages."""
        if after:
            try:
                Cursor.decode(after, sort)
            except CursorError:
                # A cursor is opaque: the schema cannot tell a real one, so one this queue
                # never gave names a page that does not exist (404), not a malformed request.
                raise ConsoleError(
                    404,
                    "not-found",
                    "no such page of this queue (`after` is not a cursor it gave for this "
                    "sort): start again without `after`",
                ) from None
        calls = []
        for service in SERVICES:
            wanted = None if kinds is None else [k for k in kinds if SERVICE_OF[k] == service]
            if wanted == []:
                continue
            params: dict[str, Any] = {
                "status": ",".join(statuses),
                "overdue": "true" if overdue_only else "false",
                "sort": sort,
                "limit": limit,
            }
            if wanted:
                params["kind"] = ",".join(wanted)
            if hospitals:
                params["hospital"] = ",".join(hospitals)
            if after:
                params["after"] = after
            calls.append(
                self.services.owner(service).get(
                    "/v1/queue",
                    on_behalf_of(user),
                    params,
                    parse=_ServicePage.model_validate_json,
                )
            )
        answers: list[_ServicePage] = await gather_all(*calls)
        found = [t for answer in answers for t in answer.tasks]
        found.sort(key=lambda t: merge_key(sort, t.service, t))
        shown = found[:limit]
        more = len(found) > limit or any(answer.next for answer in answers)
        last = shown[-1] if shown and len(shown) == limit and more else None
        cards = await self.cards(user, [t.case_id for t in shown])
        return QueuePage(
            # Both parts were validated as they were read: joined without another pass
            # (a copy with its card is cheaper than constructing the row again).
            rows=[_with_card(t, cards.get(t.case_id)) for t in shown],
            next=Cursor.after(sort, last.service, last).encode() if last else None,
        )

    async def cards(self, user: User, case_ids: list[str]) -> dict[str, CardOut]:
        """The cases' cards in one call to intake. When intake cannot answer, the queue
        still shows (its rows say the card is unknown): the work must go on."""
        wanted = list(dict.fromkeys(case_ids))
        if not wanted:
            return {}
        try:
            answer: _Cards = await self.services.intake.query(
                "/v1/cards",
                on_behalf_of(user),
                {"case_ids": wanted},
                parse=_Cards.model_validate_json,
            )
        except ConsoleError as exc:
            if exc.code != UNAVAILABLE:
                raise
            return {}
        return {c.case_id: c for c in answer.cards}

    async def search(self, user: User, query: SearchIn) -> SearchOut:
        """The centre's cases intake finds (and records in its access audit)."""
        answer = await self.services.intake.query(
            "/v1/search", on_behalf_of(user), query.model_dump(mode="json", exclude_none=True)
        )
        log.info(
            "cases searched",
            actor=user.username,
            centre_id=user.centre_id,
            searched_by=answer["searched_by"],
            found=len(answer["results"]),
        )
        return SearchOut.model_validate(answer)

    async def case(self, user: User, case_id: str) -> CaseOut:
        """A case's page: facts and tasks (referral, scheduling), updates sent
        (outcome), the card with its earlier cases (intake) and the exits taken
        (intake, scheduling, referral), read together. The
        case is the user's centre's if any service says so; none does: 404."""
        who = on_behalf_of(user)
        referral, scheduling, outcome, card, cancels, reopens, corrections = await gather_all(
            self._case(self.services.referral.get(f"/v1/cases/{case_id}", who)),
            self._case(self.services.scheduling.get(f"/v1/cases/{case_id}", who)),
            self._case(self.services.outcome.get(f"/v1/cases/{case_id}/updates", who)),
            self._case(self.services.intake.get(f"/v1/cases/{case_id}/card", who)),
            # The exits' audits, each where the exit was decided (exit_history.py).
            self._case(self.services.intake.get(f"/v1/cases/{case_id}/exits", who)),
            self._case(self.services.scheduling.get(f"/v1/cases/{case_id}/reopens", who)),
            self._case(self.services.referral.get(f"/v1/cases/{case_id}/fee-support", who)),
        )
        if referral is None and scheduling is None and card is None:
            raise ConsoleError(404, "not-found", "no such case")
        facts, case_tasks = _merge_case(case_id, referral, scheduling)
        updates = [UpdateOut.model_validate(u) for u in (outcome or {}).get("updates", [])]
        closed = [u for u in updates if u.status == "completed" and u.business_status == "closed"]
        report = closed[-1].details.get("outcome_report") if closed else None
        earlier = [FoundCaseOut.model_validate(c) for c in (card or {}).get("earlier", [])]
        return CaseOut(
            case_id=case_id,
            card=FoundCaseOut.model_validate(card) if card else None,
            facts=facts,
            tasks=case_tasks,
            updates=updates,
            report=report,
            earlier=earlier,
            exits=exit_history(cancels, reopens, corrections),
        )

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
        facts, case_tasks = _merge_case(task.case_id, referral, scheduling)
        defaults: dict[str, int] = {}
        if referral is not None:
            known = referral["facts"]
            defaults = {str(k): int(v) for k, v in known.get("default_quantities", {}).items()}
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
        # A visit of a do-not-contact case: the social worker first, no patient phone.
        shown, contact = for_task(
            task.kind, PersonalDetails.model_validate(personal) if personal else None
        )
        return TaskDetail(
            out=TaskDetailOut(
                task=task,
                case=facts,
                case_tasks=case_tasks,
                personal=shown,
                contact=contact,
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


def _with_card(row: QueueItemOut, card: CardOut | None) -> QueueItemOut:
    return row if card is None else row.model_copy(update={"card": card})


def _merge_case(
    case_id: str, referral: dict[str, Any] | None, scheduling: dict[str, Any] | None
) -> tuple[CaseFacts, list[TaskOut]]:
    """The case's facts as referral and scheduling keep them, and both services' tasks
    in the order they were created."""
    facts: dict[str, Any] = {"case_id": case_id}
    case_tasks: list[TaskOut] = []
    if referral is not None:
        known = referral["facts"]
        facts.update({k: known.get(k) for k in (*_SHARED_FACTS, *_REFERRAL_FACTS)})
        facts["closed"] = known.get("closed")
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
    return CaseFacts(**{k: v for k, v in facts.items() if v is not None}), case_tasks


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
