"""The exits a coordinator needs (issue 10), as API routes and as the case page's
forms (templates/_case_actions.html): each a call to the service that owns the
decision, which checks the centre, audits who, when, why and the note, and tells
the hospital.

    cancel      intake      POST /v1/cases/{id}/cancel          any coordinator
    reopen      scheduling  POST /v1/tasks/{id}/reopen          any coordinator
    fee-support referral    POST /v1/cases/{id}/fee-support     a lead

Who may: cancelling and reopening are what the coordinator who learns of a death, a
transfer, new contact details does at once, so every coordinator of the centre may;
correcting fee support changes who pays, so a lead does it (a second pair of eyes on
money). The pages' forms need a ticked confirmation; the API takes the body alone.
"""

from __future__ import annotations

import urllib.parse
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field

from services.console import pages
from services.console.api import CurrentUser, _errors
from services.console.auth import User
from services.console.desk import on_behalf_of
from services.console.errors import ConsoleError
from services.console.schemas import TaskOut
from services.console.state import console_of
from services.lib.runtime.logging import get_logger

log = get_logger(__name__)
CaseId = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:-]+$")]
TaskId = Annotated[int, Path(ge=1, le=2**63 - 1)]
CancelReason = Literal["deceased", "transferred", "declined-by-patient", "consent-withdrawn"]
CANCEL_REASONS: tuple[str, ...] = (
    "deceased",
    "transferred",
    "declined-by-patient",
    "consent-withdrawn",
)
FeeSupport = Literal["full", "self-pay"]
NOTE_MAX = 2000


class CancelIn(BaseModel):
    model_config = {"frozen": True, "extra": "forbid"}

    reason_code: CancelReason
    note: str | None = Field(default=None, max_length=NOTE_MAX)


class CancelOut(BaseModel):
    case_id: str
    status: Literal["cancelled"]
    reason_code: str
    cancelled_by: str


class ReopenIn(BaseModel):
    model_config = {"frozen": True, "extra": "forbid"}

    note: str | None = Field(default=None, max_length=NOTE_MAX)


class FeeSupportIn(BaseModel):
    model_config = {"frozen": True, "extra": "forbid"}

    fee_support: FeeSupport
    note: str = Field(min_length=1, max_length=NOTE_MAX, description="why: kept in the audit")


class FeeSupportOut(BaseModel):
    case_id: str
    fee_support: FeeSupport
    previous: FeeSupport


# ------------------------------------------------------------------ the calls


async def cancel(request: Request, user: User, case_id: str, body: CancelIn) -> CancelOut:
    answer = await console_of(request).services.intake.post(
        f"/v1/cases/{_quoted(case_id)}/cancel", on_behalf_of(user), body.model_dump()
    )
    log.info("case cancelled", actor=user.username, case_id=case_id, reason_code=body.reason_code)
    return CancelOut.model_validate(answer)


async def reopen(request: Request, user: User, task_id: int, body: ReopenIn) -> TaskOut:
    answer = await console_of(request).services.scheduling.post(
        f"/v1/tasks/{task_id}/reopen", on_behalf_of(user), body.model_dump()
    )
    task = TaskOut.model_validate(answer)
    log.info("task reopen", actor=user.username, task_id=task_id, case_id=task.case_id)
    return task


async def correct_fee_support(
    request: Request, user: User, case_id: str, body: FeeSupportIn
) -> FeeSupportOut:
    if not user.is_lead:
        raise ConsoleError(403, "forbidden", "only a lead may correct a case's fee support")
    answer = await console_of(request).services.referral.post(
        f"/v1/cases/{_quoted(case_id)}/fee-support", on_behalf_of(user), body.model_dump()
    )
    log.info("fee support corrected", actor=user.username, case_id=case_id)
    return FeeSupportOut.model_validate(answer)


def _quoted(case_id: str) -> str:
    return urllib.parse.quote(case_id, safe="")


# ------------------------------------------------------------------ the API

api = APIRouter(prefix="/api")


@api.post(
    "/cases/{case_id}/cancel",
    response_model=CancelOut,
    responses=_errors(401, 404, 409, 422, 503),
)
async def cancel_route(
    request: Request, user: CurrentUser, case_id: CaseId, body: CancelIn
) -> CancelOut:
    """Cancel the case at any open point with a reason (`deceased`, `transferred`,
    `declined-by-patient`, `consent-withdrawn`) and an optional note: every service
    closes its work and each referring hospital hears `cancelled` with the reason in
    English and Korean. 409 `case-closed` when the case is already finished."""
    return await cancel(request, user, case_id, body)


@api.post(
    "/tasks/scheduling/{task_id}/reopen",
    response_model=TaskOut,
    responses=_errors(401, 404, 409, 422, 503),
)
async def reopen_route(
    request: Request, user: CurrentUser, task_id: TaskId, body: ReopenIn | None = None
) -> TaskOut:
    """Try an unreachable person again: the visit on hold as `unreachable` returns to
    the queue with its window and the hospital hears the case resume. 409
    `invalid-state` unless the visit is on hold as unreachable."""
    return await reopen(request, user, task_id, body or ReopenIn())


@api.post(
    "/cases/{case_id}/fee-support",
    response_model=FeeSupportOut,
    responses=_errors(401, 403, 404, 409, 422, 503),
)
async def fee_support_route(
    request: Request, user: CurrentUser, case_id: CaseId, body: FeeSupportIn
) -> FeeSupportOut:
    """A lead corrects the case's fee support (`full` or `self-pay`) before its care
    plan, with a note; the hospital hears `fee-support-corrected`. 409 `care-plan-set`
    once the plan is priced, 409 `case-closed` once the case is finished."""
    return await correct_fee_support(request, user, case_id, body)


# ------------------------------------------------------------------ the case page's forms

forms = APIRouter(include_in_schema=False)
CONFIRM_MISSING = (
    "확인란에 표시해 주세요: 이 작업은 병원에 알려집니다. "
    "Tick the confirmation: this action is told to the hospital."
)


@forms.post("/cases/{case_id}/{action}")
async def case_action(
    request: Request, user: pages.PageUser, case_id: CaseId, action: str
) -> Response:
    """The case page's exit forms; done: back to the case page with a notice. An error
    is shown on the error page with the service's message and a way back."""
    pages._same_origin(request)
    form = await pages._form(request)
    back = f"/cases/{_quoted(case_id)}"
    try:
        if action not in ("cancel", "reopen", "fee-support"):
            raise ConsoleError(404, "not-found", "no such action")
        if pages._first(form, "confirm") != "yes":
            raise ConsoleError(422, "invalid-request", CONFIRM_MISSING)
        note = pages._first(form, "note")[:NOTE_MAX] or None
        notice = await _act(request, user, case_id, action, form, note)
    except ConsoleError as exc:
        return _error_page(request, user, exc, back)
    return RedirectResponse(f"{back}?" + urllib.parse.urlencode({"notice": notice}), 303)


async def _act(
    request: Request,
    user: User,
    case_id: str,
    action: str,
    form: dict[str, list[str]],
    note: str | None,
) -> str:
    if action == "cancel":
        reason = pages._first(form, "reason_code")
        if reason not in CANCEL_REASONS:
            raise ConsoleError(
                422,
                "invalid-request",
                "취소 사유를 고르세요. Choose a reason for the cancellation.",
            )
        await cancel(request, user, case_id, CancelIn(reason_code=reason, note=note))  # type: ignore[arg-type]
        return "case-cancelled"
    if action == "reopen":
        raw = pages._first(form, "task_id")
        if not raw.isdigit() or not 1 <= int(raw) < 2**63:
            raise ConsoleError(422, "invalid-request", "task_id: the visit to reopen")
        task = await reopen(request, user, int(raw), ReopenIn(note=note))
        if task.case_id != case_id:  # a form for another case: done, but say where
            log.warning("reopen posted under another case", task_id=task.id)
        return "case-reopened"
    fee = pages._first(form, "fee_support")
    if fee not in ("full", "self-pay"):
        raise ConsoleError(422, "invalid-request", "fee_support: full or self-pay")
    if note is None:
        raise ConsoleError(
            422, "invalid-request", "메모에 정정 사유를 적어 주세요. note: say why it changes."
        )
    await correct_fee_support(request, user, case_id, FeeSupportIn(fee_support=fee, note=note))  # type: ignore[arg-type]
    return "fee-support-corrected"


def _error_page(request: Request, user: User, exc: ConsoleError, back: str) -> Response:
    context: dict[str, Any] = {
        "status": exc.status,
        "message": exc.message,
        "user": user,
        "centre": "",
        "back": back,
    }
    return pages.TEMPLATES.TemplateResponse(request, "error.html", context, status_code=exc.status)
