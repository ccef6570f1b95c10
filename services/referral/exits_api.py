"""Referral's exit route (issue 10): a lead corrects a case's fee support before
its care plan, with a note.

    POST /v1/cases/{case_id}/fee-support   {fee_support, note}
    GET  /v1/cases/{case_id}/fee-support   the corrections so far (the audit)

Errors: 403 forbidden (not a lead), 404 not-found (no such case, or another
centre's), 409 care-plan-set (the plan is already priced on the old value), 409
case-closed, 422 invalid-request.
"""

# No `from __future__ import annotations`: FastAPI resolves string annotations in the
# module's globals, and the routes' `Caller` dependency is local to the router factory.

from datetime import datetime
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from contracts.intake import FeeSupport
from services.lib.runtime.api_errors import ApiError
from services.lib.runtime.callers import Actor, Callers
from services.lib.runtime.logging import get_logger
from services.lib.tasks.api import CaseId, run
from services.referral import store, usecases

log = get_logger(__name__)


class FeeSupportBody(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    fee_support: FeeSupport
    # Why: required, so the audit always says (stays in referral's store).
    note: str = Field(min_length=1, max_length=2000)


class FeeCorrectionView(BaseModel):
    previous: str
    fee_support: str
    note: str
    actor: str
    at: datetime


class FeeSupportView(BaseModel):
    case_id: str
    fee_support: str
    previous: str


def exits_router(pool: asyncpg.Pool, callers: Callers) -> APIRouter:
    router = APIRouter(prefix="/v1")
    Caller = Annotated[Actor, Depends(callers.actor)]

    @router.post("/cases/{case_id}/fee-support", response_model=FeeSupportView)
    async def correct(actor: Caller, case_id: CaseId, body: FeeSupportBody) -> FeeSupportView:
        """A lead corrects the case's fee support (`full` or `self-pay`) before its care
        plan (it changes who pays: not a coordinator's call alone)."""
        if not actor.is_lead:
            raise ApiError(403, "forbidden", "only a lead may correct a case's fee support")
        if not body.note.strip():
            raise ApiError(422, "invalid-request", "note: say why the fee support changes")
        event = await run(
            usecases.correct_fee_support(
                pool,
                case_id,
                actor=actor.username,
                centre_id=actor.centre_id,
                fee_support=body.fee_support,
                note=body.note.strip(),
            )
        )
        log.info(
            "fee support corrected",
            actor=actor.username,
            caller=actor.caller,
            centre_id=actor.centre_id,
            case_id=case_id,
            fee_support=event.fee_support,
        )
        return FeeSupportView(
            case_id=case_id, fee_support=event.fee_support, previous=event.previous
        )

    @router.get("/cases/{case_id}/fee-support", response_model=list[FeeCorrectionView])
    async def corrections(actor: Caller, case_id: CaseId) -> list[FeeCorrectionView]:
        async with pool.acquire() as conn:
            row = await store.get_case(conn, case_id)
            if row is None or row["centre_id"] != actor.centre_id:
                raise ApiError(404, "not-found", "no such case")
            found = await store.fee_corrections_of(conn, case_id)
        return [FeeCorrectionView(**c) for c in found]

    return router
