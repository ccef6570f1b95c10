"""Server-rendered pages for medical social workers: sign-in, my hospital's referrals,
the referral form (drafts and submission), a referral's page with its timeline and
actions, and the printable outcome report.

Plain HTML forms posting back here: everything works without JavaScript; with it,
static/portal.js shows the form's errors next to their fields before sending (the
same messages, from the same constraints). The session cookie is HttpOnly and
SameSite=Strict, and a POST whose Origin is another site is refused as well.
A referral or draft of another hospital is answered exactly like one that does not
exist (404): its existence is not disclosed.
"""

from __future__ import annotations

import secrets
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from contracts.hospital_v1 import CancelReason
from contracts.reasons import REASONS
from services.lib import labels as shared
from services.lib.hospitalside.timeline import Gap, latest, ordered
from services.lib.hospitalside.updates import latest_updates, referral_updates
from services.lib.policy import seoul_date
from services.lib.runtime.logging import get_logger
from services.lib.web import LoginRequired as LoginRequired
from services.lib.web import login_redirect as login_redirect
from services.lib.web import safe_next
from services.portal import domain, form, labels, store, usecases
from services.portal.errors import PortalError
from services.portal.state import COOKIE, Portal, portal_of
from services.portal.users import User

log = get_logger(__name__)
TEMPLATES = Jinja2Templates(directory=Path(__file__).with_name("templates"))
TEMPLATES.env.filters.update(shared.FILTERS)
TEMPLATES.env.globals.update(labels=labels, shared=shared, Gap=Gap, quote=urllib.parse.quote)
MAX_FORM_BYTES = 64 * 1024
CANCEL_REASONS = {c.value: REASONS[c.value].label for c in CancelReason}
router = APIRouter(include_in_schema=False)
DraftId = Annotated[int, PathParam(ge=1, le=2**63 - 1)]


def page_user(request: Request) -> User:
    user = portal_of(request).user_from(request)
    if user is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target)
    return user


PageUser = Annotated[User, Depends(page_user)]


def _render(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    user = context.get("user")
    if isinstance(user, User):
        context.setdefault("hospital", portal_of(request).hospital_name(user.hospital_id))
    response: HTMLResponse = TEMPLATES.TemplateResponse(
        request, template, context, status_code=status_code
    )
    return response


async def _form(request: Request) -> dict[str, list[str]]:
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raise PortalError(415, "invalid-request", "forms are sent urlencoded")
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise PortalError(413, "invalid-request", "the form is too large")
    return urllib.parse.parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)


def _first(values: dict[str, list[str]], name: str) -> str:
    return (values.get(name) or [""])[0].strip()


def _same_origin(request: Request) -> None:
    origin = request.headers.get("origin")
    if (
        origin
        and origin != "null"
        and urllib.parse.urlsplit(origin).netloc != request.headers.get("host")
    ):
        raise PortalError(403, "forbidden", "cross-site form posts are refused")


def referral_url(referral_id: str) -> str:
    # Any text the contract allows (1..64 characters, "/" included): the routes take the
    # rest of the path, so a referral id never has to be a single path segment.
    return "/referrals/" + urllib.parse.quote(referral_id, safe="")


# ------------------------------------------------------------------ sign-in


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, next: str = "/") -> Response:
    if portal_of(request).user_from(request) is not None:
        return RedirectResponse(safe_next(next), 303)
    return _render(request, "login.html", {"next": safe_next(next), "error": None, "user": None})


@router.post("/login", response_class=HTMLResponse)
async def login_submit(request: Request) -> Response:
    _same_origin(request)
    portal = portal_of(request)
    values = await _form(request)
    next_url = safe_next(_first(values, "next"))
    username = _first(values, "username")
    address = request.client.host if request.client else ""
    context = {"next": next_url, "username": username, "user": None}
    wait = portal.throttle.retry_after(username, address)
    if wait is not None:
        log.info("sign-in throttled", channel="page")
        response = _render(
            request,
            "login.html",
            {
                **context,
                "error": f"로그인 시도가 너무 많습니다. {wait}초 후에 다시 시도해 주세요. "
                f"Too many attempts: try again in {wait} seconds.",
            },
            status_code=429,
        )
        response.headers["Retry-After"] = str(wait)
        return response
    user = await portal.users.authenticate(username, (values.get("password") or [""])[0])
    if user is None:
        portal.throttle.failed(username, address)
        log.info("sign-in refused", channel="page")
        return _render(
            request,
            "login.html",
            {
                **context,
                "error": "아이디 또는 비밀번호가 맞지 않습니다. Unknown username or wrong password.",
            },
            status_code=401,
        )
    portal.throttle.succeeded(username)
    log.info("signed in", actor=user.username, channel="page")
    signed_in = RedirectResponse(next_url, 303)
    signed_in.set_cookie(
        COOKIE,
        portal.sessions.issue(user.username),
        max_age=portal.sessions.max_age_s,
        httponly=True,
        samesite="strict",
        secure=portal.settings.portal_cookie_secure,
        path="/",
    )
    return signed_in


@router.post("/logout")
async def logout(request: Request) -> Response:
    _same_origin(request)
    token = request.cookies.get(COOKIE)
    if token:
        portal_of(request).sessions.revoke(token)  # the token is dead even if kept
    response = RedirectResponse("/login", 303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


# ------------------------------------------------------------------ my hospital's referrals


@router.get("/", response_class=HTMLResponse)
async def referrals_page(request: Request, user: PageUser) -> Response:
    portal = portal_of(request)
    async with portal.pool.acquire() as conn:
        rows = await store.list_referrals(conn, user.hospital_id)
        ids = [r.referral_id for r in rows if r.state == "submitted" and r.referral_id]
        current = await latest_updates(conn, user.hospital_id, ids)
    return _render(
        request,
        "referrals.html",
        {"user": user, "rows": rows, "current": current, "referral_url": referral_url},
    )


# ------------------------------------------------------------------ the form


def _new_form(user: User) -> dict[str, list[str]]:
    today = seoul_date(datetime.now(UTC))
    return {
        # The hospital's own number may replace it; unique among its referrals.
        "referral_id": [f"P-{today:%Y%m%d}-{secrets.token_hex(3).upper()}"],
        "consent.method": ["written"],
        "priority": ["routine"],
    }


def _form_page(
    request: Request,
    user: User,
    values: dict[str, list[str]],
    *,
    action: str,
    errors: dict[str, str] | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    portal = portal_of(request)
    return _render(
        request,
        "form.html",
        {
            "user": user,
            "fields": form.FIELDS,
            "groups": form.GROUPS,
            "values": values,
            "errors": errors or {},
            "action": action,
            "notice": notice,
            "districts": portal.registry.districts,
        },
        status_code=status_code,
    )


@router.get("/referrals/new", response_class=HTMLResponse)
async def new_referral(request: Request, user: PageUser) -> Response:
    return _form_page(request, user, _new_form(user), action="/referrals/new")


@router.post("/referrals/new", response_class=HTMLResponse)
async def new_referral_post(request: Request, user: PageUser) -> Response:
    _same_origin(request)
    return await _save_or_submit(request, user, None)


@router.get("/drafts/{draft_id}", response_class=HTMLResponse)
async def draft_page(
    request: Request, user: PageUser, draft_id: DraftId, notice: str = ""
) -> Response:
    async with portal_of(request).pool.acquire() as conn:
        found = await store.draft(conn, user.hospital_id, draft_id)
    if found is None:
        raise PortalError(404, "not-found", "no such draft")
    return _form_page(
        request,
        user,
        found.form,
        action=f"/drafts/{draft_id}",
        notice=labels.NOTICES.get(notice),
    )


@router.post("/drafts/{draft_id}", response_class=HTMLResponse)
async def draft_post(request: Request, user: PageUser, draft_id: DraftId) -> Response:
    _same_origin(request)
    return await _save_or_submit(request, user, draft_id)


async def _save_or_submit(request: Request, user: User, draft_id: int | None) -> Response:
    pool = portal_of(request).pool
    values = await _form(request)
    intent = _first(values, "intent")
    fields = {k: v for k, v in values.items() if k != "intent"}
    action = "/referrals/new" if draft_id is None else f"/drafts/{draft_id}"
    try:
        if intent == "save":
            saved = await usecases.save_draft(pool, user, draft_id, fields)
            return RedirectResponse(f"/drafts/{saved}?notice=saved", 303)
        outcome = await usecases.submit(pool, user, draft_id, fields)
    except usecases.NotFound as exc:
        raise PortalError(404, "not-found", "no such draft") from exc
    if not outcome.ok:
        return _form_page(
            request, user, fields, action=action, errors=outcome.errors, status_code=422
        )
    return RedirectResponse(referral_url(outcome.referral_id or "") + "?notice=submitted", 303)


# ------------------------------------------------------------------ a referral


async def _referral_context(portal: Portal, user: User, referral_id: str) -> dict[str, Any]:
    async with portal.pool.acquire() as conn:
        found = await store.submitted(conn, user.hospital_id, referral_id)
        if found is None:
            raise PortalError(404, "not-found", "no such referral")
        updates = await referral_updates(conn, user.hospital_id, referral_id)
        sent = await store.sent_events(conn, user.hospital_id, referral_id)
    current = latest(updates)
    discharged = any(e.ce_type.endswith("patient.discharged.v1") for e in sent)
    report = next(
        (u.details.get("outcome_report") for u in reversed(updates) if u.status == "completed"),
        None,
    )
    return {
        "user": user,
        "referral": found,
        "submission": found.submission or {},
        "timeline": ordered(updates),
        "current": current,
        "sent": sent,
        "allowed": domain.allowed(current.status if current else None, discharged),
        "report": report,
        "cancel_reasons": CANCEL_REASONS,
        "referral_url": referral_url(referral_id),
    }


@router.get("/referrals/{referral_id:path}/report", response_class=HTMLResponse)
async def report_page(request: Request, user: PageUser, referral_id: str) -> Response:
    context = await _referral_context(portal_of(request), user, referral_id)
    if context["report"] is None:
        raise PortalError(404, "not-found", "no outcome report yet: the referral is not completed")
    return _render(request, "report.html", context)


@router.get("/referrals/{referral_id:path}", response_class=HTMLResponse)
async def referral_page(
    request: Request, user: PageUser, referral_id: str, notice: str = ""
) -> Response:
    context = await _referral_context(portal_of(request), user, referral_id)
    return _render(
        request, "referral.html", {**context, "notice": labels.NOTICES.get(notice), "errors": {}}
    )


@router.post("/referrals/{referral_id:path}/{action}", response_class=HTMLResponse)
async def referral_action(
    request: Request, user: PageUser, referral_id: str, action: str
) -> Response:
    _same_origin(request)
    portal = portal_of(request)
    values = await _form(request)
    try:
        if action == "discharge-date":
            outcome = await usecases.change_discharge_date(
                portal.pool, user, referral_id, _first(values, "expected_discharge_date")
            )
            notice = "date-changed"
        elif action == "discharge":
            outcome = await usecases.record_discharge(
                portal.pool, user, referral_id, _first(values, "discharged_at")
            )
            notice = "discharged"
        elif action == "cancel":
            outcome = await usecases.cancel(
                portal.pool,
                user,
                referral_id,
                _first(values, "reason_code"),
                _first(values, "reason"),
            )
            notice = "cancelled"
        else:
            raise PortalError(404, "not-found", "no such action")
    except usecases.NotFound as exc:
        raise PortalError(404, "not-found", "no such referral") from exc
    if not outcome.ok:
        context = await _referral_context(portal, user, referral_id)
        return _render(
            request,
            "referral.html",
            {**context, "notice": None, "errors": outcome.errors, "failed_action": action},
            status_code=409 if "action" in outcome.errors else 422,
        )
    return RedirectResponse(referral_url(referral_id) + f"?notice={notice}", 303)
