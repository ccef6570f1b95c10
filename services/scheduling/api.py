"""Scheduling's HTTP API (/v1 on its own port): its visit tasks through
services.lib.tasks.api, completed by the `Coordinator` use cases with
scheduling's own contact-attempt limit, and the case facts a coordinator needs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.scheduling import FindingCode
from services.lib.runtime.callers import Actor, Callers
from services.lib.runtime.service import ServiceContext
from services.lib.tasks.api import Completed, Completion, TaskDesk, mount_task_api
from services.scheduling import domain, store
from services.scheduling.settings import SchedulingSettings
from services.scheduling.usecases import SERVICE, Coordinator


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
    def _reached(self) -> VisitBody:
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


def routes(app: FastAPI, context: ServiceContext[SchedulingSettings]) -> None:
    visits = _Visits(
        Coordinator(
            context.pool,
            max_contact_attempts=context.settings.max_contact_attempts,
            findings=context.findings,
        )
    )
    desk = TaskDesk(
        service=SERVICE,
        pool=context.pool,
        lease=timedelta(minutes=context.settings.lease_minutes),
        completions={kind: Completion(VisitBody, visits.complete) for kind in domain.VISIT_KIND},
        case_facts=case_facts,
    )
    mount_task_api(app, desk, Callers(context.settings.api_callers))
