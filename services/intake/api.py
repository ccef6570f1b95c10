"""Intake's HTTP API (/v1 on its own port): the personal details of a case, and
nothing else. Every read is recorded in `access_audit` (who looked, and why) in
the same transaction as the read (services.intake.queries.case_details).

    GET /v1/cases/{case_id}/personal?purpose=<why>

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

from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, Path, Query

from services.intake import queries
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


def routes(app: FastAPI, context: ServiceContext[IntakeSettings]) -> None:
    callers = Callers(context.settings.api_callers)
    install_error_handlers(app)
    app.include_router(personal_router(context.pool, context.registry, callers))
    if not callers.configured:
        log.warning("no API callers configured (CARELINK_API_CALLERS): every API call is refused")
