"""Referral's HTTP API (/v1 on its own port): its review and care-plan tasks
through services.lib.tasks.api, completed by the `Coordinator` use cases, and
the case facts a coordinator needs (no personal data)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

import asyncpg
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.hospital_v1 import ServiceCode
from contracts.referral import ReviewRefusal
from services.lib.runtime.callers import Actor, Callers
from services.lib.runtime.service import ServiceContext
from services.lib.tasks.api import Completed, Completion, TaskDesk, mount_task_api
from services.referral import domain, store
from services.referral.settings import ReferralSettings
from services.referral.usecases import CARE_PLAN, REVIEW, SERVICE, Coordinator


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
        answer = await self._desk.set_care_plan(task_id, actor.username, lines=lines)
        outcome = str(answer.get("outcome"))
        if outcome == "plan" and answer.get("partial"):
            outcome = "partial"
        return Completed(outcome, dict(answer))


async def case_facts(conn: asyncpg.Connection, case_id: str) -> dict[str, Any] | None:
    row = await store.get_case(conn, case_id)
    if row is None:
        return None
    requested = [str(code) for code in row["requested_services"]]
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
    }


def routes(app: FastAPI, context: ServiceContext[ReferralSettings]) -> None:
    completions = _Completions(Coordinator(context.pool, context.policies))
    desk = TaskDesk(
        service=SERVICE,
        pool=context.pool,
        lease=timedelta(minutes=context.settings.lease_minutes),
        completions={
            REVIEW: Completion(ReviewBody, completions.review),
            CARE_PLAN: Completion(CarePlanBody, completions.care_plan),
        },
        case_facts=case_facts,
    )
    mount_task_api(app, desk, Callers(context.settings.api_callers))
