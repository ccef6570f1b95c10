"""Scheduling's HTTP API (/v1 on its own port): its visit tasks through
services.lib.tasks.api, completed by the `Coordinator` use cases with
scheduling's own contact-attempt limit, and the case facts a coordinator needs.

    POST /v1/tasks/{id}/reopen   {note?}: a visit on hold as unreachable, tried again
    GET  /v1/cases/{id}/reopens  the case's reopened visits: who, when, why, the note"""

# No `from __future__ import annotations`: FastAPI resolves string annotations in the
# module's globals, and the exit route's `Caller` dependency is local to its router.

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Body, Depends, FastAPI
from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.scheduling import FindingCode
from services.lib.runtime.api_errors import ApiError
from services.lib.runtime.callers import Actor, Callers
from services.lib.runtime.logging import get_logger
from services.lib.runtime.service import ServiceContext
from services.lib.tasks import operations as tasks
from services.lib.tasks.api import (
    NO_SUCH_TASK,
    CaseId,
    Completed,
    Completion,
    TaskDesk,
    TaskId,
    TaskView,
    mount_task_api,
    run,
)
from services.scheduling import domain, store
from services.scheduling.settings import SchedulingSettings
from services.scheduling.usecases import SERVICE, Coordinator

log = get_logger(__name__)


class VisitBody(BaseModel):
    """A visit that reached the person, or a failed contact attempt (`reached: false`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reached: bool
    precautions_acknowledged: bool | None = None
    # Codes of the findings vocabulary (the use case refuses one it lacks, naming the
    # field); the free-text note stays in scheduling's store.
    findings: list[FindingCode] = Field(default=[], max_length=20)
    notes: str | None = Field(default=None, max_length=4000)

    @model_validator(mode="after")
    def _reached(self) -> "VisitBody":
        if self.reached and self.precautions_acknowledged is None:
            raise ValueError("a visit that reached the person needs precautions_acknowledged")
        if not self.reached and (self.findings or self.notes or self.precautions_acknowledged):
            raise ValueError("a failed contact attempt takes no findings, notes or precautions")
        return self


class _Visits:
    def __init__(self, coordinator: Coordinator) -> None:
        self._desk = coordinator

    async def complete(self, actor: Actor, task_id: int, body: VisitBody) -> Completed:
        if body.reached:
            await self._desk.complete_visit(
                task_id,
                actor.username,
                precautions_acknowledged=bool(body.precautions_acknowledged),
                findings=list(body.findings),
                notes=body.notes,
            )
            return Completed("visited")
        task = await self._desk.contact_failed(task_id, actor.username)
        return Completed("unreachable" if task.status == "suspended" else "contact-failed")


async def case_facts(conn: asyncpg.Connection, case_id: str) -> dict[str, Any] | None:
    row = await store.get_case(conn, case_id)
    if row is None:
        return None
    return {
        name: row[name]
        for name in (
            "hospital_id",
            "referral_id",
            "centre_id",
            "priority",
            "reviewed",
            "expected_discharge_date",
            "discharged_at",
            "hold_reason",
            "services_linked",
            "closed",
        )
    }


class ReopenBody(BaseModel):
    """Why the coordinator tries again (new contact details, a new idea): a note that
    stays in scheduling's store and travels nowhere."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    note: str | None = Field(default=None, max_length=2000)


class ReopenView(BaseModel):
    """A reopened visit, as task_audit keeps it (the note stays in scheduling's store)."""

    task_id: int
    kind: str
    reason_code: str | None
    note: str | None
    actor: str
    at: datetime


def exits_router(coordinator: Coordinator, pool: asyncpg.Pool, callers: Callers) -> APIRouter:
    """Scheduling's exit: reopen a visit on hold as unreachable."""
    router = APIRouter(prefix="/v1")
    Caller = Annotated[Actor, Depends(callers.actor)]

    @router.post("/tasks/{task_id}/reopen", response_model=TaskView)
    async def reopen(
        actor: Caller, task_id: TaskId, body: Annotated[ReopenBody | None, Body()] = None
    ) -> TaskView:
        """Put a visit on hold as unreachable back in the queue with its window: audited
        (who, when, `unreachable`, the note), the hospital hears the case resume. 409
        invalid-state unless the visit is on hold as unreachable."""
        async with pool.acquire() as conn:
            try:
                found = await tasks.get(conn, task_id)
            except tasks.TaskNotFound:
                found = None
        if found is None or found.centre_id != actor.centre_id:
            raise ApiError(404, "not-found", NO_SUCH_TASK)
        note = body.note if body is not None else None
        done = await run(coordinator.reopen(task_id, actor.username, note=note or None))
        log.info(
            "task reopen",
            actor=actor.username,
            caller=actor.caller,
            centre_id=actor.centre_id,
            task_id=task_id,
            kind=done.kind,
            case_id=done.case_id,
            status=done.status,
        )
        return TaskView.of(SERVICE, done, datetime.now(UTC))

    @router.get("/cases/{case_id}/reopens", response_model=list[ReopenView])
    async def reopens(actor: Caller, case_id: CaseId) -> list[ReopenView]:
        """The case's visits a coordinator reopened (the exit's audit): which visit, who,
        when, the hold's reason (`unreachable`), the note; oldest first."""
        async with pool.acquire() as conn:
            if await store.centre_of(conn, case_id) != actor.centre_id:
                raise ApiError(404, "not-found", "no such case")
            found = await store.reopens_of(conn, case_id)
        return [ReopenView(**row) for row in found]

    return router


def routes(app: FastAPI, context: ServiceContext[SchedulingSettings]) -> None:
    coordinator = Coordinator(
        context.pool,
        max_contact_attempts=context.settings.max_contact_attempts,
        findings=context.findings,
    )
    visits = _Visits(coordinator)
    desk = TaskDesk(
        service=SERVICE,
        pool=context.pool,
        lease=timedelta(minutes=context.settings.lease_minutes),
        completions={kind: Completion(VisitBody, visits.complete) for kind in domain.VISIT_KIND},
        case_facts=case_facts,
    )
    callers = Callers(context.settings.api_callers)
    mount_task_api(app, desk, callers)
    app.include_router(exits_router(coordinator, context.pool, callers))
