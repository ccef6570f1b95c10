"""Intake's HTTP API (/v1 on its own port): the personal details of a case, and a
coordinator's cancellation of it (intake holds the case's root). Every read is
recorded in `access_audit` (who looked, and why) in the same transaction as the
read (services.intake.queries.case_details); every cancellation in `case_exits`.

    GET  /v1/cases/{case_id}/personal?purpose=<why>
    POST /v1/cases/{case_id}/cancel      {reason_code, note?}: a coordinator ends the case
    GET  /v1/cases/{case_id}/exits       who ended the case, when, why (the audit)

Whose case it is: intake does not store a case's centre. It routed the case,
when it accepted it, to the Care SOS centre of the opening referral's district
(the registry), and it checks the coordinator's centre against that, from its
own data. It never takes a centre the caller names for the case: a console that
asked for another centre's case by mistake, or a stolen console credential,
still gets 404 for a case outside the coordinator's centre. If the registry
ever moves a district to another centre, that district's older cases answer
404 until they are dealt with: on any doubt the check refuses, it never opens.
"""

# No `from __future__ import annotations`: FastAPI resolves string annotations in the
# module's globals, and the routes' `Caller` dependency is local to the router factory.

from datetime import datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from services.intake import queries, store, usecases
from services.intake.cards_api import lookup_router
from services.intake.destruction_api import destruction_router
from services.intake.domain import CoordinatorCancelReason
from services.intake.settings import IntakeSettings
from services.lib.policy import Registry
from services.lib.runtime.api_errors import ApiError, install_error_handlers
from services.lib.runtime.callers import Actor, Callers
from services.lib.runtime.logging import get_logger
from services.lib.runtime.service import ServiceContext

log = get_logger(__name__)
CaseId = Annotated[str, Path(min_length=1, max_length=100)]
Purpose = Annotated[
    str,
    Query(
        pattern=r"^[a-z][a-z0-9-]{0,39}$",
        description="why the details are read, e.g. task-page; recorded in the audit",
    ),
]
NO_SUCH_CASE = "no such case"


def personal_router(pool: asyncpg.Pool, registry: Registry, callers: Callers) -> APIRouter:
    router = APIRouter(prefix="/v1")
    Caller = Annotated[Actor, Depends(callers.actor)]

    @router.get("/cases/{case_id}/personal")
    async def personal(actor: Caller, case_id: CaseId, purpose: Purpose) -> dict[str, Any]:
        """The patient's contact and care facts for every referral of the case."""
        async with pool.acquire() as conn:
            district = await queries.case_district(conn, case_id)
            centre = registry.centre_for(district) if district is not None else None
            if centre is None or centre.id != actor.centre_id:
                log.info(
                    "personal details refused",
                    actor=actor.username,
                    caller=actor.caller,
                    centre_id=actor.centre_id,
                    case_id=case_id,
                )
                raise ApiError(404, "not-found", NO_SUCH_CASE)
            details = await queries.case_details(
                conn, case_id, viewer=actor.username, purpose=purpose
            )
        if details is None:
            raise ApiError(404, "not-found", NO_SUCH_CASE)
        log.info(
            "personal details read",
            actor=actor.username,
            caller=actor.caller,
            centre_id=actor.centre_id,
            case_id=case_id,
            purpose=purpose,
        )
        return details

    return router


class CancelBody(BaseModel):
    """A coordinator's cancellation: a coded reason, and a note that stays in intake."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reason_code: CoordinatorCancelReason
    note: str | None = Field(default=None, max_length=2000)


class ExitView(BaseModel):
    action: str
    reason_code: str
    note: str | None
    actor: str
    at: datetime


class CancelView(BaseModel):
    case_id: str
    status: str = "cancelled"
    reason_code: str
    cancelled_by: str


def exits_router(pool: asyncpg.Pool, registry: Registry, callers: Callers) -> APIRouter:
    """A coordinator's exits from a case that intake owns (the case's root): cancel."""
    router = APIRouter(prefix="/v1")
    Caller = Annotated[Actor, Depends(callers.actor)]

    async def centre_checked(conn: asyncpg.Connection, case_id: str, actor: Actor) -> None:
        district = await queries.case_district(conn, case_id)
        centre = registry.centre_for(district) if district is not None else None
        if centre is None or centre.id != actor.centre_id:
            raise ApiError(404, "not-found", NO_SUCH_CASE)

    @router.post("/cases/{case_id}/cancel", response_model=CancelView)
    async def cancel(actor: Caller, case_id: CaseId, body: CancelBody) -> CancelView:
        """Cancel the case at any open point (deceased, transferred, declined-by-patient,
        consent-withdrawn): audited, every service closes its work, the hospital hears
        `cancelled` with the reason. 409 case-closed when it is already finished."""
        async with pool.acquire() as conn:
            await centre_checked(conn, case_id, actor)
            try:
                await usecases.cancel_by_coordinator(
                    conn,
                    case_id,
                    reason_code=body.reason_code,
                    note=body.note or None,
                    actor=actor.username,
                    centre_id=actor.centre_id,
                )
            except usecases.ExitError as exc:
                raise ApiError(exc.status, exc.code, exc.message) from None
        log.info(
            "case cancelled",
            actor=actor.username,
            caller=actor.caller,
            centre_id=actor.centre_id,
            case_id=case_id,
            reason_code=body.reason_code,
        )
        return CancelView(case_id=case_id, reason_code=body.reason_code, cancelled_by="centre")

    @router.get("/cases/{case_id}/exits", response_model=list[ExitView])
    async def exits(actor: Caller, case_id: CaseId) -> list[ExitView]:
        """The audit of the case's exits: who, when, which reason, the note."""
        async with pool.acquire() as conn:
            await centre_checked(conn, case_id, actor)
            rows = await store.exits_of(conn, case_id)
        return [ExitView(**row) for row in rows]

    return router


def routes(app: FastAPI, context: ServiceContext[IntakeSettings]) -> None:
    callers = Callers(context.settings.api_callers)
    install_error_handlers(app)
    app.include_router(personal_router(context.pool, context.registry, callers))
    app.include_router(exits_router(context.pool, context.registry, callers))
    # Cards, search and earlier cases for the console's queue, search and case pages.
    app.include_router(lookup_router(context.pool, context.registry, callers))
    # The operators' preview and run of PIPA destruction (caller `operator` only).
    app.include_router(destruction_router(context.pool, context.policies, callers))
    if not callers.configured:
        log.warning("no API callers configured (CARELINK_API_CALLERS): every API call is refused")
