"""Intake's HTTP API for the operators' destruction of personal data (PIPA art. 21):

    GET  /v1/personal-data/destruction?limit=N   the closed cases due now (preview)
    POST /v1/personal-data/destruction {limit}   destroy them now (what the hourly job does)
    GET  /v1/personal-data/destructions?limit=N  the destruction log, newest first

Only the operators' credential may call these: the caller named `operator` in
CARELINK_API_CALLERS (the console's token is refused with 403: coordinators never run
destruction). `X-Carelink-Actor` names the operator for the log. Answers hold case
ids, dates, reasons and field names, never a value.
"""

# No `from __future__ import annotations`: FastAPI resolves the annotations at runtime.

import re
from datetime import UTC, datetime
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from services.intake import destruction
from services.lib.policy import PolicyBook
from services.lib.runtime.api_errors import ApiError
from services.lib.runtime.callers import ACTOR_HEADER, Callers
from services.lib.runtime.logging import get_logger

log = get_logger(__name__)
OPERATOR = "operator"
_NAME = re.compile(r"[\w.@+:-]{1,100}", re.ASCII)
Limit = Annotated[int, Query(ge=1, le=10_000)]


class DueCaseView(BaseModel):
    case_id: str
    closed_at: datetime
    due_at: datetime


class PreviewView(BaseModel):
    as_of: datetime
    due: list[DueCaseView]
    retention_years: dict[int, int] = Field(description="policy year -> years kept after closure")


class RunBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: int = Field(default=200, ge=1, le=10_000)


class DestroyedView(BaseModel):
    case_id: str
    reason: str
    fields: list[str]
    destroyed_at: datetime | None = None


class RunView(BaseModel):
    as_of: datetime
    destroyed: list[DestroyedView]


def destruction_router(pool: asyncpg.Pool, policies: PolicyBook, callers: Callers) -> APIRouter:
    router = APIRouter(prefix="/v1/personal-data")

    def operator(request: Request) -> str:
        caller = callers.caller(request.headers.get("authorization"))
        if caller is None:
            raise ApiError(401, "unauthorized", "send Authorization: Bearer <the operator token>")
        if caller != OPERATOR:
            raise ApiError(
                403, "forbidden", "only the operators' credential (caller `operator`) may"
            )
        name = request.headers.get(ACTOR_HEADER, "")
        return name if _NAME.fullmatch(name) else OPERATOR

    Operator = Annotated[str, Depends(operator)]

    def years() -> dict[int, int]:
        return {p.year: p.personal_data_retention_years for p in policies.policies}

    @router.get("/destruction", response_model=PreviewView)
    async def preview(who: Operator, limit: Limit = 100) -> PreviewView:
        """The closed cases whose retention period has ended (their personal data is
        destroyed at the job's next run, or by POST). Nothing changes."""
        now = datetime.now(UTC)
        async with pool.acquire() as conn:
            due = await destruction.due_cases(conn, policies, now, limit=limit)
        return PreviewView(
            as_of=now,
            due=[
                DueCaseView(case_id=d.case_id, closed_at=d.closed_at, due_at=d.due_at) for d in due
            ],
            retention_years=years(),
        )

    @router.post("/destruction", response_model=RunView)
    async def run(who: Operator, body: RunBody) -> RunView:
        """Destroy the due cases now, up to `limit`: each recorded in the log."""
        now = datetime.now(UTC)
        done = await destruction.destroy_due(pool, policies, now=now, limit=body.limit)
        log.info("destruction run by an operator", actor=who, cases=len(done))
        return RunView(
            as_of=now,
            destroyed=[
                DestroyedView(case_id=d.case_id, reason=d.reason, fields=list(d.fields))
                for d in done
            ],
        )

    @router.get("/destructions", response_model=list[DestroyedView])
    async def log_of(who: Operator, limit: Limit = 100) -> list[DestroyedView]:
        """The destruction log, newest first: case, reason, fields, when."""
        async with pool.acquire() as conn:
            rows = await conn.fetch(
                """SELECT case_id, reason, fields, destroyed_at
                   FROM personal_data_destructions ORDER BY destroyed_at DESC, id DESC
                   LIMIT $1""",
                limit,
            )
        return [DestroyedView(**dict(row)) for row in rows]

    return router
