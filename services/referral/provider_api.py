"""The providers' part of referral's HTTP API: a contracted provider that can report
delivery itself sees its own lines and reports their steps.

    GET  /v1/provider/lines              its lines (status: ordered, started by default)
    GET  /v1/provider/lines/{id}         one of its lines
    POST /v1/provider/lines/{id}/report  a step: {started_on} | {ended_on, delivered_units,
                                         end_reason?} | both

Each provider has its own credential (`CARELINK_PROVIDER_CALLERS`: provider id → token,
services.lib.runtime.callers compares them), separate from the console's: a provider
token opens only these routes, the console's none of them. Another provider's line is
404, exactly like one that does not exist. The API carries no personal data: the
patient's contact details reach the provider from the centre, not from here. Errors are
`{error, message}`; a 422 names the field.
"""

# No `from __future__ import annotations`: FastAPI resolves the routes' annotations, and
# the `Provider` dependency is local to the router factory.

from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from contracts.referral import LineEndReason
from services.lib.policy import Providers
from services.lib.runtime.api_errors import ApiError, install_error_handlers
from services.lib.runtime.callers import Callers
from services.lib.runtime.logging import get_logger
from services.lib.tasks import operations as tasks
from services.lib.tasks.api import STATUS_OF_CODE, split_codes
from services.referral.domain import OPEN
from services.referral.usecases import LineReport, NoSuchLine, ProviderDesk, line_view

log = get_logger(__name__)
LINE_STATUSES = ("ordered", "started", "ended", "cancelled")
LineId = Annotated[int, Path(ge=1, le=2**63 - 1)]


class LineView(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    case_id: str
    line: int
    service: str
    quantity: int = Field(description="units ordered (half-hours, days, hours, meals)")
    unit: str
    provider_id: str
    planned_start: date
    ordered_on: date
    status: str = Field(description="ordered, started, ended, cancelled")
    outcome: str | None = Field(description="delivered, partly-delivered, not-delivered")
    started_on: date | None
    ended_on: date | None
    delivered_units: int | None
    end_reason: str | None
    cost_krw: int | None
    district_paid_krw: int | None
    self_paid_krw: int | None


class LinesView(BaseModel):
    provider_id: str
    lines: list[LineView]


class ReportBody(BaseModel):
    """One step of a line: its start, its end, or both (a start then an end)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    started_on: date | None = None
    ended_on: date | None = None
    delivered_units: int | None = Field(default=None, ge=0, le=100_000)
    end_reason: LineEndReason | None = Field(
        default=None, description="required when fewer units than ordered were delivered"
    )

    @model_validator(mode="after")
    def _step(self) -> "ReportBody":
        if self.started_on is None and self.ended_on is None:
            raise ValueError("report started_on, or ended_on with delivered_units, or both")
        if self.ended_on is not None and self.delivered_units is None:
            raise ValueError("delivered_units: an end needs the units delivered")
        if self.ended_on is None and (self.delivered_units is not None or self.end_reason):
            raise ValueError("ended_on: units delivered and an end reason come with the end")
        return self

    def report(self) -> LineReport:
        return LineReport(
            started_on=self.started_on,
            ended_on=self.ended_on,
            delivered_units=self.delivered_units,
            end_reason=self.end_reason,
        )


class ReportedView(BaseModel):
    line: LineView
    outcome: str = Field(
        description="line-started, line-ended, or for the case's last line delivered / "
        "could-not-deliver"
    )
    open_lines: int


def provider_callers(tokens: dict[str, SecretStr], providers: Providers) -> Callers:
    """The providers' credentials, for providers of the file only."""
    unknown = sorted(set(tokens) - providers.ids)
    if unknown:
        log.warning("provider credentials for unknown providers, refused", providers=unknown)
    return Callers({name: token for name, token in tokens.items() if name in providers.ids})


def mount_provider_api(app: FastAPI, desk: ProviderDesk, callers: Callers) -> None:
    install_error_handlers(app)
    app.include_router(provider_router(desk, callers))


def _problem(exc: tasks.TaskError) -> ApiError:
    if isinstance(exc, NoSuchLine | tasks.TaskNotFound):
        return ApiError(404, "not-found", "no such line")
    return ApiError(STATUS_OF_CODE.get(exc.code, 409), exc.code, str(exc))


def provider_router(desk: ProviderDesk, callers: Callers) -> APIRouter:
    router = APIRouter(prefix="/v1/provider")

    def provider_of(request: Request) -> str:
        found = callers.caller(request.headers.get("authorization"))
        if found is None:
            raise ApiError(401, "unauthorized", "send Authorization: Bearer <your provider token>")
        return found

    Provider = Annotated[str, Depends(provider_of)]

    @router.get("/lines", response_model=LinesView)
    async def lines(
        provider: Provider,
        status: Annotated[list[str] | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> LinesView:
        """The provider's lines, by planned start (default: ordered and started)."""
        wanted = split_codes(status, LINE_STATUSES, "status") or list(OPEN)
        found = await desk.lines(provider, statuses=wanted, limit=limit)
        return LinesView(
            provider_id=provider, lines=[LineView.model_validate(line_view(x)) for x in found]
        )

    @router.get("/lines/{line_id}", response_model=LineView)
    async def line(provider: Provider, line_id: LineId) -> LineView:
        try:
            found = await desk.line(provider, line_id)
        except tasks.TaskError as exc:
            raise _problem(exc) from None
        return LineView.model_validate(line_view(found))

    @router.post("/lines/{line_id}/report", response_model=ReportedView)
    async def report(provider: Provider, line_id: LineId, body: ReportBody) -> ReportedView:
        """Report a step of one of your lines: started, or ended with the units delivered
        (and why, when fewer than ordered)."""
        try:
            done = await desk.report(provider, line_id, body.report(), now=datetime.now(UTC))
        except tasks.TaskError as exc:
            raise _problem(exc) from None
        summary: dict[str, Any] = done.summary()
        log.info(
            "delivery reported",
            caller=f"provider:{provider}",
            line_id=line_id,
            case_id=done.line.case_id,
            status=done.line.status,
            outcome=done.outcome,
        )
        return ReportedView(
            line=LineView.model_validate(line_view(done.line)),
            outcome=done.outcome,
            open_lines=summary["open_lines"],
        )

    return router
