"""Referral's HTTP API (/v1 on its own port): its review, care-plan and delivery
tasks through services.lib.tasks.api, completed by the `Coordinator` use cases, the
case facts a coordinator needs (no personal data), and the providers' own routes
(services.referral.provider_api)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import asyncpg
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.hospital_v1 import ServiceCode
from contracts.referral import LineEndReason, ReviewRefusal
from services.lib.policy import SERVICE_CODES, Providers, seoul_date
from services.lib.runtime.callers import Actor, Callers
from services.lib.runtime.service import ServiceContext
from services.lib.tasks.api import Completed, Completion, TaskDesk, mount_task_api
from services.referral import domain, store
from services.referral.domain import LineChoice
from services.referral.exits_api import exits_router
from services.referral.provider_api import mount_provider_api, provider_callers
from services.referral.settings import ReferralSettings
from services.referral.usecases import (
    CARE_PLAN,
    DELIVERY,
    REVIEW,
    SERVICE,
    Coordinator,
    LineReport,
    ProviderDesk,
    line_view,
)


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ReviewBody(_Body):
    decision: Literal["eligible", "ineligible"]
    reason_code: ReviewRefusal | None = None

    @model_validator(mode="after")
    def _reason(self) -> ReviewBody:
        if self.decision == "ineligible" and self.reason_code is None:
            raise ValueError("an ineligible decision needs a reason_code")
        return self


class PlanLineBody(_Body):
    service: ServiceCode
    quantity: int
    # The provider to order the line from (one contracted for the case's district and
    # the service); none = the suggested one. The planned start; none = the default.
    provider_id: str | None = Field(default=None, min_length=2, max_length=40)
    planned_start: date | None = None


class CarePlanBody(_Body):
    """A plan (lines; none = a first week of each requested service), or
    `waitlist` / `could-not-deliver`."""

    decision: Literal["plan", "waitlist", "could-not-deliver"] = "plan"
    lines: list[PlanLineBody] | None = Field(default=None, max_length=50)

    @model_validator(mode="after")
    def _lines(self) -> CarePlanBody:
        if self.decision != "plan" and self.lines:
            raise ValueError(f"a {self.decision} decision takes no lines")
        return self


class DeliveryBody(_Body):
    """One step of one line of the plan: its start, its end (the units delivered; a
    reason when fewer than ordered), or both."""

    line: int = Field(ge=1, le=50)
    started_on: date | None = None
    ended_on: date | None = None
    delivered_units: int | None = Field(default=None, ge=0, le=100_000)
    end_reason: LineEndReason | None = None

    @model_validator(mode="after")
    def _step(self) -> DeliveryBody:
        if self.started_on is None and self.ended_on is None:
            raise ValueError("report started_on, or ended_on with delivered_units, or both")
        if self.ended_on is not None and self.delivered_units is None:
            raise ValueError("delivered_units: an end needs the units delivered")
        if self.ended_on is None and (self.delivered_units is not None or self.end_reason):
            raise ValueError("ended_on: units delivered and an end reason come with the end")
        return self


class _Completions:
    def __init__(self, coordinator: Coordinator) -> None:
        self._desk = coordinator

    async def review(self, actor: Actor, task_id: int, body: ReviewBody) -> Completed:
        await self._desk.complete_review(
            task_id, actor.username, decision=body.decision, reason_code=body.reason_code
        )
        return Completed("reviewed", {"decision": body.decision, "reason_code": body.reason_code})

    async def care_plan(self, actor: Actor, task_id: int, body: CarePlanBody) -> Completed:
        if body.decision == "waitlist":
            await self._desk.waitlist(task_id, actor.username)
            return Completed("waitlisted")
        if body.decision == "could-not-deliver":
            await self._desk.could_not_deliver(task_id, actor.username)
            return Completed("could-not-deliver")
        lines = [(line.service.value, line.quantity) for line in body.lines or []] or None
        choices = [LineChoice(line.provider_id, line.planned_start) for line in body.lines or []]
        answer = await self._desk.set_care_plan(
            task_id, actor.username, lines=lines, choices=choices
        )
        outcome = str(answer.get("outcome"))
        if outcome == "plan" and answer.get("partial"):
            outcome = "partial"
        return Completed(outcome, dict(answer))

    async def delivery(self, actor: Actor, task_id: int, body: DeliveryBody) -> Completed:
        done = await self._desk.record_delivery(
            task_id,
            actor.username,
            body.line,
            LineReport(
                started_on=body.started_on,
                ended_on=body.ended_on,
                delivered_units=body.delivered_units,
                end_reason=body.end_reason,
            ),
        )
        return Completed(done.outcome, done.summary())


def facts_reader(
    providers: Providers, district_of: Callable[[str], str]
) -> Callable[[asyncpg.Connection, str], Any]:
    async def read(conn: asyncpg.Connection, case_id: str) -> dict[str, Any] | None:
        return await case_facts(conn, case_id, providers, district_of)

    return read


async def case_facts(
    conn: asyncpg.Connection,
    case_id: str,
    providers: Providers,
    district_of: Callable[[str], str],
) -> dict[str, Any] | None:
    row = await store.get_case(conn, case_id)
    if row is None:
        return None
    requested = [str(code) for code in row["requested_services"]]
    district = row["district"] or district_of(row["centre_id"])
    lines = await store.lines_of(conn, case_id)
    names = {p.id: p.summary()["name"] for p in providers.providers}
    today = seoul_date(datetime.now(UTC))
    return {
        "hospital_id": row["hospital_id"],
        "referral_id": row["referral_id"],
        "centre_id": row["centre_id"],
        "priority": row["priority"],
        "fee_support": row["fee_support"],
        "requested_services": requested,
        "policy_year": row["policy_year"],
        "closed": row["closed"],
        # What the care-plan form starts from: the plan set when nobody chooses quantities.
        "default_quantities": dict(domain.default_request(requested)),
        "district": district,
        "expected_discharge_date": row["expected_discharge_date"],
        # Who may deliver each service here, the suggested provider first, and the
        # planned start a line gets unless the coordinator picks another day.
        "providers": {
            code: [p.summary() for p in providers.for_service(district, code)]
            for code in SERVICE_CODES
        },
        "default_start": domain.default_start(today, row["expected_discharge_date"]),
        # The plan's lines as ordered and delivered so far.
        "lines": [
            {**line_view(line), "provider_name": names.get(line.provider_id)} for line in lines
        ],
    }


def routes(app: FastAPI, context: ServiceContext[ReferralSettings]) -> None:
    registry, providers = context.registry, context.providers
    completions = _Completions(Coordinator(context.pool, context.policies, providers, registry))

    def district_of(centre_id: str) -> str:
        centre = next((c for c in registry.centres if c.id == centre_id), None)
        return centre.district if centre is not None else ""

    desk = TaskDesk(
        service=SERVICE,
        pool=context.pool,
        lease=timedelta(minutes=context.settings.lease_minutes),
        completions={
            REVIEW: Completion(ReviewBody, completions.review),
            CARE_PLAN: Completion(CarePlanBody, completions.care_plan),
            DELIVERY: Completion(DeliveryBody, completions.delivery),
        },
        case_facts=facts_reader(providers, district_of),
    )
    callers = Callers(context.settings.api_callers)
    mount_task_api(app, desk, callers)
    app.include_router(exits_router(context.pool, callers))
    mount_provider_api(
        app,
        ProviderDesk(context.pool, context.policies, providers),
        provider_callers(context.settings.provider_callers, providers),
    )
