"""The HTTP API of a service's coordinator tasks, served by referral and by
scheduling on their own port under /v1. The console calls it for coordinators.

    GET  /v1/queue                     a page of the centre's tasks (kind, status, hospital,
                                       overdue; sort; limit; after: the cursor of the page)
    GET  /v1/queue/fingerprint         a digest of the centre's live queue, cheap to poll
    GET  /v1/tasks/{id}                one task
    POST /v1/tasks/{id}/claim          take it under the service's lease (again: renew)
    POST /v1/tasks/{id}/renew          extend the lease you hold
    POST /v1/tasks/{id}/release        give it back to the queue
    POST /v1/tasks/{id}/reassign       {to}: a lead hands it to a colleague
    POST /v1/tasks/{id}/complete       the result the task's kind takes
    GET  /v1/cases/{case_id}           the case facts this service keeps, and its tasks

Every call names its caller and coordinator (services.lib.runtime.callers);
the centre scopes everything: another centre's task or case is 404, exactly
like one that does not exist. Errors are `{error, message}` with the task
library's stable codes. The rules stay in the service's use cases; the lease
length is the service's own setting (`CARELINK_LEASE_MINUTES`).
"""

# No `from __future__ import annotations`: FastAPI resolves string annotations in the
# module's globals, and the routes' `Caller` dependency is local to the router factory.

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Self

import asyncpg
from fastapi import APIRouter, Body, Depends, FastAPI, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.lib.runtime.api_errors import ApiError, field_problems, install_error_handlers
from services.lib.runtime.callers import Actor, Callers
from services.lib.runtime.logging import get_logger
from services.lib.runtime.responses import model_response
from services.lib.tasks import operations as tasks
from services.lib.tasks.ordering import DEFAULT_SORT, SORT_HELP, Cursor, CursorError, Sort

log = get_logger(__name__)
STATUSES = ("open", "claimed", "done", "cancelled", "suspended")
# The task library's and use cases' stable codes, as HTTP statuses.
STATUS_OF_CODE = {
    "not-found": 404,
    "claimed-by-other": 409,
    "lease-expired": 409,
    "not-claimed": 409,
    "task-closed": 409,
    "invalid-plan": 422,
    "invalid-request": 422,
    "policy-incomplete": 409,
}
TaskId = Annotated[int, Path(ge=1, le=2**63 - 1)]
CaseId = Annotated[str, Path(min_length=1, max_length=100)]
NO_SUCH_TASK = "no such task"


class TaskView(BaseModel):
    model_config = ConfigDict(frozen=True)

    service: str
    id: int
    kind: str
    case_id: str
    centre_id: str
    priority: str
    due_at: datetime
    window_start: datetime | None
    status: str
    overdue: bool
    claimed_by: str | None
    lease_until: datetime | None
    attempts: int
    result: dict[str, Any] | None
    created_at: datetime
    completed_at: datetime | None
    completed_by: str | None
    hospital_id: str | None = None
    expected_discharge_date: date | None = None

    @classmethod
    def of(cls, service: str, task: tasks.Task, now: datetime) -> Self:
        # Validated, not model_construct'ed: pydantic-core checks 19 fields in about a
        # third of the time model_construct's Python loop takes to set them (issue 12).
        return cls(
            service=service,
            id=task.id,
            kind=task.kind,
            case_id=task.case_id,
            centre_id=task.centre_id,
            priority=task.priority,
            due_at=task.due_at,
            window_start=task.window_start,
            status=task.status,
            overdue=task.overdue(now),
            claimed_by=task.claimed_by,
            lease_until=task.lease_until,
            attempts=task.attempts,
            result=task.result,
            created_at=task.created_at,
            completed_at=task.completed_at,
            completed_by=task.completed_by,
            hospital_id=task.hospital_id,
            expected_discharge_date=task.expected_discharge_date,
        )


class QueueView(BaseModel):
    centre_id: str
    tasks: list[TaskView]
    next: str | None = Field(
        default=None, description="the cursor of the next page (`after`); none on the last page"
    )


class Fingerprint(BaseModel):
    centre_id: str
    fingerprint: str


class CaseView(BaseModel):
    case_id: str
    facts: dict[str, Any] = Field(description="what this service keeps of the case")
    tasks: list[TaskView]


class CompleteView(BaseModel):
    task: TaskView
    outcome: str
    details: dict[str, Any] = {}


class ReassignBody(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    to: str = Field(min_length=1, max_length=100, description="username of a colleague")


@dataclass(frozen=True)
class Completed:
    outcome: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Completion:
    """How one kind of task is completed: the body it takes and the use case that
    does it (given the coordinator, the task id and the validated body)."""

    body: type[BaseModel]
    run: Callable[[Actor, int, Any], Awaitable[Completed]]


@dataclass(frozen=True)
class TaskDesk:
    """What a task-owning service plugs into these routes."""

    service: str
    pool: asyncpg.Pool
    lease: timedelta
    # By task kind: the kinds this service owns.
    completions: Mapping[str, Completion]
    # The case's facts as this service keeps them (with `centre_id`), or None.
    case_facts: Callable[[asyncpg.Connection, str], Awaitable[dict[str, Any] | None]]


def split_codes(values: list[str] | None, allowed: tuple[str, ...], what: str) -> list[str] | None:
    """`kind=a&kind=b` or `kind=a,b`; empty means no filter; unknown codes are refused."""
    codes = [c.strip() for v in values or [] for c in v.split(",") if c.strip()]
    unknown = sorted(set(codes) - set(allowed))
    if unknown:
        raise ApiError(
            422,
            "invalid-request",
            f"{what}: unknown {', '.join(unknown)} (one of {', '.join(allowed)})",
        )
    return codes or None


def task_error(exc: tasks.TaskError) -> ApiError:
    if isinstance(exc, tasks.TaskNotFound):
        return ApiError(404, "not-found", NO_SUCH_TASK)
    return ApiError(STATUS_OF_CODE.get(exc.code, 409), exc.code, str(exc))


async def run(call: Awaitable[Any]) -> Any:
    """Await a task operation or use case; its TaskError becomes the API's answer."""
    try:
        return await call
    except tasks.TaskError as exc:
        raise task_error(exc) from None


def mount_task_api(app: FastAPI, desk: TaskDesk, callers: Callers) -> None:
    """Add the task routes to the service's health app, with `{error, message}` errors."""
    install_error_handlers(app)
    app.include_router(task_router(desk, callers))
    if not callers.configured:
        log.warning("no API callers configured (CARELINK_API_CALLERS): every API call is refused")


def task_router(desk: TaskDesk, callers: Callers) -> APIRouter:
    router = APIRouter(prefix="/v1")
    Caller = Annotated[Actor, Depends(callers.actor)]
    kinds = tuple(desk.completions)

    async def owned(conn: asyncpg.Connection, task_id: int, actor: Actor) -> tasks.Task:
        """The task, if it is the actor's centre's; otherwise it does not exist for them."""
        try:
            task = await tasks.get(conn, task_id)
        except tasks.TaskNotFound:
            task = None
        if task is None or task.centre_id != actor.centre_id:
            raise ApiError(404, "not-found", NO_SUCH_TASK)
        return task

    def did(actor: Actor, action: str, task: tasks.Task, **extra: str) -> TaskView:
        log.info(
            "task " + action,
            actor=actor.username,
            caller=actor.caller,
            centre_id=actor.centre_id,
            task_id=task.id,
            kind=task.kind,
            case_id=task.case_id,
            status=task.status,
            **extra,
        )
        return TaskView.of(desk.service, task, datetime.now(UTC))

    @router.get("/queue", response_model=QueueView)
    async def queue(
        actor: Caller,
        kind: Annotated[list[str] | None, Query()] = None,
        status: Annotated[list[str] | None, Query()] = None,
        overdue: bool = False,
        hospital: Annotated[list[str] | None, Query(description="hospital ids")] = None,
        sort: Annotated[Sort, Query(description=SORT_HELP)] = DEFAULT_SORT,
        after: Annotated[
            str | None, Query(max_length=400, description="a page's `next` cursor")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> Response:
        """A page of the centre's tasks in `sort` order (default: open and claimed, urgent
        first). The cursor is the same for every task service, so a caller merging two
        services' pages passes each the one cursor (services.lib.tasks.ordering)."""
        wanted = split_codes(kind, kinds, "kind")
        statuses = split_codes(status, STATUSES, "status")
        hospitals = [h.strip() for v in hospital or [] for h in v.split(",") if h.strip()]
        try:
            cursor = Cursor.decode(after, sort) if after else None
        except CursorError as exc:
            raise ApiError(422, "invalid-request", str(exc)) from None
        now = datetime.now(UTC)
        async with desk.pool.acquire() as conn:
            found = await tasks.queue(
                conn,
                actor.centre_id,
                now=now,
                kinds=wanted,
                statuses=tuple(statuses) if statuses else tasks.LIVE,
                overdue_only=overdue,
                hospital_ids=hospitals or None,
                sort=sort,
                after=cursor,
                service=desk.service,
                limit=limit,
            )
        last = found[-1] if len(found) == limit else None
        # Serialised once (a page is up to 1,000 tasks): services.lib.runtime.responses.
        return model_response(
            QueueView(
                centre_id=actor.centre_id,
                tasks=[TaskView.of(desk.service, t, now) for t in found],
                next=Cursor.after(sort, desk.service, last).encode() if last else None,
            )
        )

    @router.get("/queue/fingerprint", response_model=Fingerprint)
    async def fingerprint(actor: Caller) -> Fingerprint:
        async with desk.pool.acquire() as conn:
            digest = await tasks.live_fingerprint(conn, actor.centre_id)
        return Fingerprint(centre_id=actor.centre_id, fingerprint=digest)

    @router.get("/tasks/{task_id}", response_model=TaskView)
    async def task(actor: Caller, task_id: TaskId) -> TaskView:
        async with desk.pool.acquire() as conn:
            found = await owned(conn, task_id, actor)
        return TaskView.of(desk.service, found, datetime.now(UTC))

    @router.post("/tasks/{task_id}/claim", response_model=TaskView)
    async def claim(actor: Caller, task_id: TaskId) -> TaskView:
        """Take the task under a lease; claiming a task you hold renews the lease."""
        now = datetime.now(UTC)
        async with desk.pool.acquire() as conn, conn.transaction():
            await owned(conn, task_id, actor)
            done = await run(tasks.claim(conn, task_id, actor.username, now=now, lease=desk.lease))
        return did(actor, "claim", done)

    @router.post("/tasks/{task_id}/renew", response_model=TaskView)
    async def renew(actor: Caller, task_id: TaskId) -> TaskView:
        """Extend the lease of a task you hold (never takes one you do not)."""
        now = datetime.now(UTC)
        async with desk.pool.acquire() as conn, conn.transaction():
            current = await owned(conn, task_id, actor)
            if not (current.status == "claimed" and current.claimed_by == actor.username):
                # The precise reason (someone else holds it, not claimed, closed).
                await run(tasks.held(conn, task_id, actor.username, now=now))
            done = await run(tasks.claim(conn, task_id, actor.username, now=now, lease=desk.lease))
        return did(actor, "renew", done)

    @router.post("/tasks/{task_id}/release", response_model=TaskView)
    async def release(actor: Caller, task_id: TaskId) -> TaskView:
        now = datetime.now(UTC)
        async with desk.pool.acquire() as conn, conn.transaction():
            await owned(conn, task_id, actor)
            done = await run(tasks.release(conn, task_id, actor.username, now=now))
        return did(actor, "release", done)

    @router.post("/tasks/{task_id}/reassign", response_model=TaskView)
    async def reassign(actor: Caller, task_id: TaskId, body: ReassignBody) -> TaskView:
        """A lead hands a live task to a colleague (the caller knows who is a colleague)."""
        now = datetime.now(UTC)
        async with desk.pool.acquire() as conn, conn.transaction():
            await owned(conn, task_id, actor)
            if not actor.is_lead:
                raise ApiError(403, "forbidden", "only a lead may hand a task to someone else")
            done = await run(
                tasks.reassign(conn, task_id, actor.username, body.to, now=now, lease=desk.lease)
            )
        return did(actor, "reassign", done, to=body.to)

    @router.post("/tasks/{task_id}/complete", response_model=CompleteView)
    async def complete(
        actor: Caller, task_id: TaskId, body: Annotated[dict[str, Any], Body()]
    ) -> CompleteView:
        """Complete a task you hold with the result its kind takes."""
        async with desk.pool.acquire() as conn:
            found = await owned(conn, task_id, actor)
        completion = desk.completions.get(found.kind)
        if completion is None:  # a kind this service does not complete (none today)
            raise ApiError(409, "task-error", f"a {found.kind} task cannot be completed here")
        try:
            result = completion.body.model_validate(body)
        except ValidationError as exc:
            raise ApiError(422, "invalid-request", field_problems(exc.errors())) from None
        outcome: Completed = await run(completion.run(actor, task_id, result))
        async with desk.pool.acquire() as conn:
            after = await tasks.get(conn, task_id)
        view = did(actor, "complete", after, outcome=outcome.outcome)
        return CompleteView(task=view, outcome=outcome.outcome, details=outcome.details)

    @router.get("/cases/{case_id}", response_model=CaseView)
    async def case(actor: Caller, case_id: CaseId) -> CaseView:
        """What this service keeps of the centre's case (no personal data) and its tasks."""
        now = datetime.now(UTC)
        async with desk.pool.acquire() as conn:
            facts = await desk.case_facts(conn, case_id)
            if facts is None or facts.get("centre_id") != actor.centre_id:
                raise ApiError(404, "not-found", "no such case")
            found = await tasks.for_case(conn, case_id)
        return CaseView(
            case_id=case_id,
            facts=facts,
            tasks=[TaskView.of(desk.service, t, now) for t in found],
        )

    return router
