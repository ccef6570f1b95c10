"""Outcome's HTTP API (/v1 on its own port): what the hospitals were told (issue 10).

    GET /v1/cases/{case_id}/updates   every update sent for the case, with its sequence

Outcome is the one voice back to hospitals; the console's case page reads the
case's timeline and prints the outcome report (the `closed` update's details) from
here. Whose case it is: the centre intake routed it to, as the `triaged` update told
the hospital (`details.centre_id`); another centre's case, or one without that
update, is 404, exactly like one that does not exist.
"""

# No `from __future__ import annotations`: FastAPI resolves string annotations in the
# module's globals, and the routes' `Caller` dependency is local to the router factory.

from datetime import datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, Path
from pydantic import BaseModel

from services.lib.runtime.api_errors import ApiError, install_error_handlers
from services.lib.runtime.callers import Actor, Callers
from services.lib.runtime.logging import get_logger
from services.lib.runtime.service import ServiceContext
from services.outcome import store
from services.outcome.settings import OutcomeSettings

log = get_logger(__name__)
CaseId = Annotated[str, Path(min_length=1, max_length=100)]


class UpdateSent(BaseModel):
    hospital_id: str
    referral_id: str
    sequence: int
    status: str
    business_status: str
    reason_code: str | None
    reason: str | None
    reason_ko: str | None
    occurred_at: datetime
    details: dict[str, Any]


class UpdatesView(BaseModel):
    case_id: str
    updates: list[UpdateSent]


def centre_of(updates: list[UpdateSent]) -> str | None:
    """The centre the case was routed to, from the `triaged` update that said so."""
    for update in updates:
        if update.business_status == "triaged" and update.details.get("centre_id"):
            return str(update.details["centre_id"])
    return None


def updates_router(pool: asyncpg.Pool, callers: Callers) -> APIRouter:
    router = APIRouter(prefix="/v1")
    Caller = Annotated[Actor, Depends(callers.actor)]

    @router.get("/cases/{case_id}/updates", response_model=UpdatesView)
    async def updates(actor: Caller, case_id: CaseId) -> UpdatesView:
        """Every update sent to the hospitals for the case, in the order sent."""
        async with pool.acquire() as conn:
            rows = await store.updates_sent(conn, case_id)
        sent = [UpdateSent(**dict(r)) for r in rows]
        if centre_of(sent) != actor.centre_id:
            raise ApiError(404, "not-found", "no such case")
        return UpdatesView(case_id=case_id, updates=sent)

    return router


def routes(app: FastAPI, context: ServiceContext[OutcomeSettings]) -> None:
    callers = Callers(context.settings.api_callers)
    install_error_handlers(app)
    app.include_router(updates_router(context.pool, callers))
    if not callers.configured:
        log.warning("no API callers configured (CARELINK_API_CALLERS): every API call is refused")
