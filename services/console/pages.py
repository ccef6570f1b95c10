"""Server-rendered pages for coordinators: sign-in, the queue, a task.

Plain HTML forms posting back here (no JavaScript needed to work a task); the
queue refreshes itself through /api/events with a polling fallback
(static/console.js). Forms are parsed here without extra dependencies: they are
small urlencoded bodies. The session cookie is HttpOnly and SameSite=Strict,
and a POST whose Origin is another site is refused as well.
"""

from __future__ import annotations

import urllib.parse
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from services.console import labels
from services.console.auth import COOKIE, User
from services.console.errors import UNAVAILABLE, ConsoleError
from services.console.schemas import (
    RESULT_OF_KIND,
    SERVICE_OF,
    CarePlanResult,
    DeliveryResult,
    ReviewResult,
    SearchIn,
    Service,
    TaskResult,
    VisitResult,
)
from services.console.state import Console, console_of
from services.console.timeline import timeline
from services.lib.labels import day, krw, kst, yes_no
from services.lib.policy import seoul_date
from services.lib.runtime.logging import get_logger
from services.lib.tasks.ordering import DEFAULT_SORT, SORTS, Sort
from services.lib.web import LoginRequired as LoginRequired
from services.lib.web import login_redirect as login_redirect
from services.lib.web import safe_next

log = get_logger(__name__)
TEMPLATES = Jinja2Templates(directory=Path(__file__).with_name("templates"))
MAX_FORM_BYTES = 64 * 1024
STATUS_FILTERS = {
    "": ("open", "claimed"),
    "open": ("open",),
    "claimed": ("claimed",),
    "suspended": ("suspended",),
    "done": ("done",),
    "cancelled": ("cancelled",),
}
router = APIRouter(include_in_schema=False)
TaskId = Annotated[int, PathParam(ge=1, le=2**63 - 1)]
CaseIdPath = Annotated[str, PathParam(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:-]+$")]
QUEUE_SORTS = {
    "priority": "긴급 먼저 Urgent first",
    "deadline": "기한 순 By deadline",
    "discharge": "퇴원 예정 순 By expected discharge",
    "created": "등록 순 Oldest first",
}


def page_user(request: Request) -> User:
    user = console_of(request).user_from(request)
    if user is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target)
    return user


PageUser = Annotated[User, Depends(page_user)]


# ------------------------------------------------------------------ formatting


# kst, day, krw and yes_no: services.lib.labels, shared with the portal.


TEMPLATES.env.filters.update(kst=kst, day=day, krw=krw, yes_no=yes_no)
TEMPLATES.env.globals.update(labels=labels)


def _render(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    response: HTMLResponse = TEMPLATES.TemplateResponse(
        request, template, context, status_code=status_code
    )
    return response


async def _form(request: Request) -> dict[str, list[str]]:
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raise ConsoleError(415, "invalid-request", "forms are sent urlencoded")
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise ConsoleError(413, "invalid-request", "the form is too large")
    return urllib.parse.parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)


def _first(form: dict[str, list[str]], name: str) -> str:
    values = form.get(name) or [""]
    return values[0].strip()


def _same_origin(request: Request) -> None:
    origin = request.headers.get("origin")
    if origin and origin != "null":
        host = urllib.parse.urlsplit(origin).netloc
        if host != request.headers.get("host"):
            raise ConsoleError(403, "forbidden", "cross-site form posts are refused")


# ------------------------------------------------------------------ sign-in


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, next: str = "/") -> Response:
    if console_of(request).user_from(request) is not None:
        return RedirectResponse(safe_next(next), 303)
    return _render(request, "login.html", {"next": safe_next(next), "error": None, "user": None})


@router.post("/login", response_class=HTMLResponse)
async def login_submit(request: Request) -> Response:
    _same_origin(request)
    console = console_of(request)
    form = await _form(request)
    next_url = safe_next(_first(form, "next"))
    attempt = await console.sign_in(
        request, _first(form, "username"), (form.get("password") or [""])[0]
    )
    user = attempt.user
    if user is None:
        log.info("sign-in refused", channel="page", throttled=attempt.retry_after is not None)
        error = "아이디 또는 비밀번호가 맞지 않습니다. Unknown username or wrong password."
        if attempt.retry_after is not None:
            minutes = max(1, -(-attempt.retry_after // 60))
            error = (
                f"로그인 실패가 너무 많습니다. {minutes}분 후에 다시 시도하세요. "
                f"Too many failed sign-ins: try again in {minutes} minute(s)."
            )
        page = _render(
            request,
            "login.html",
            {
                "next": next_url,
                "error": error,
                "username": _first(form, "username"),
                "user": None,
            },
            status_code=401 if attempt.retry_after is None else 429,
        )
        if attempt.retry_after is not None:
            page.headers["Retry-After"] = str(attempt.retry_after)
        return page
    log.info("signed in", actor=user.username, channel="page")
    response = RedirectResponse(next_url, 303)
    response.set_cookie(
        COOKIE,
        console.sessions.issue(user.username),
        max_age=console.sessions.max_age_s,
        httponly=True,
        samesite="strict",
        secure=console.settings.cookie_secure,
        path="/",
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    _same_origin(request)
    # Ended on the server too: a copied cookie no longer signs anyone in.
    token = request.cookies.get(COOKIE)
    if token:
        console_of(request).sessions.revoke(token)
    response = RedirectResponse("/login", 303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


# ------------------------------------------------------------------ the queue


# Rows a queue page shows; the next page follows the cursor (services.lib.tasks.ordering).
QUEUE_PAGE_ROWS = 50
_CURSOR_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _queue_filters(
    console: Console,
    kind: str,
    status: str,
    overdue: str,
    hospital: str = "",
    sort: str = "",
    after: str = "",
) -> dict[str, Any]:
    """The page's filters from its query; anything unknown is dropped, never an error
    (a stale bookmark still opens the queue)."""
    return {
        "kind": kind if kind in SERVICE_OF else "",
        "status": status if status in STATUS_FILTERS else "",
        "overdue": overdue in ("1", "on", "true"),
        "hospital": hospital if hospital in console.registry.hospital_ids else "",
        "sort": sort if sort in SORTS else "",
        "after": after if 0 < len(after) <= 400 and set(after) <= _CURSOR_CHARS else "",
    }


def _query(filters: dict[str, Any], **changes: Any) -> str:
    chosen = {**filters, **changes}
    return urllib.parse.urlencode({k: ("1" if v is True else v) for k, v in chosen.items() if v})


async def _queue_rows(console: Console, user: User, filters: dict[str, Any]) -> dict[str, Any]:
    sort: Sort = filters["sort"] or DEFAULT_SORT
    try:
        page = await console.desk.queue_page(
            user,
            kinds=[filters["kind"]] if filters["kind"] else None,
            statuses=STATUS_FILTERS[filters["status"]],
            overdue_only=filters["overdue"],
            hospitals=[filters["hospital"]] if filters["hospital"] else None,
            sort=sort,
            after=filters["after"] or None,
            limit=QUEUE_PAGE_ROWS,
        )
    except ConsoleError as exc:
        if exc.status not in (404, 422) or not filters["after"]:
            raise
        # A cursor of another sort (or a mangled link): start from the first page.
        filters = {**filters, "after": ""}
        page = await console.desk.queue_page(
            user,
            kinds=[filters["kind"]] if filters["kind"] else None,
            statuses=STATUS_FILTERS[filters["status"]],
            overdue_only=filters["overdue"],
            hospitals=[filters["hospital"]] if filters["hospital"] else None,
            sort=sort,
            limit=QUEUE_PAGE_ROWS,
        )
    return {
        "rows": page.rows,
        "users": console.users,
        "me": user,
        "now": datetime.now(UTC),
        "hospital_short": lambda hid: _hospital_short(console, hid),
        "next_url": "/?" + _query(filters, after=page.next) if page.next else None,
        "first_url": "/?" + _query(filters, after="") if filters["after"] else None,
    }


@router.get("/", response_class=HTMLResponse)
async def queue_page(
    request: Request,
    user: PageUser,
    kind: str = "",
    status: str = "",
    overdue: str = "",
    hospital: str = "",
    sort: str = "",
    after: str = "",
) -> Response:
    console = console_of(request)
    filters = _queue_filters(console, kind, status, overdue, hospital, sort, after)
    query = _query(filters)
    return _render(
        request,
        "queue.html",
        {
            **await _queue_rows(console, user, filters),
            "user": user,
            "centre": _centre_name(console, user.centre_id),
            "filters": filters,
            "hospitals": [
                (h.id, _hospital_name(console, h.id)) for h in console.registry.hospitals
            ],
            "sorts": QUEUE_SORTS,
            "rows_url": "/partials/queue" + (f"?{query}" if query else ""),
        },
    )


@router.get("/partials/queue", response_class=HTMLResponse)
async def queue_rows(
    request: Request,
    kind: str = "",
    status: str = "",
    overdue: str = "",
    hospital: str = "",
    sort: str = "",
    after: str = "",
) -> Response:
    console = console_of(request)
    user = console.user_from(request)
    if user is None:
        return Response("sign in", status_code=401, media_type="text/plain")
    filters = _queue_filters(console, kind, status, overdue, hospital, sort, after)
    context = await _queue_rows(console, user, filters)
    return _render(request, "_queue_rows.html", context)


# ------------------------------------------------------------------ search


@router.get("/search", response_class=HTMLResponse)
async def search_page(request: Request, user: PageUser) -> Response:
    console = console_of(request)
    return _render(
        request,
        "search.html",
        {"user": user, "centre": _centre_name(console, user.centre_id), "form": {}},
    )


@router.post("/search", response_class=HTMLResponse)
async def search_submit(request: Request, user: PageUser) -> Response:
    """The search form posts (a name and birth date never go into a URL); intake
    searches and records the search in its access audit."""
    _same_origin(request)
    console = console_of(request)
    form = await _form(request)
    way = _first(form, "by")
    fields = {
        "referral-id": {"referral_id": _first(form, "referral_id")},
        "case-id": {"case_id": _first(form, "case_id")},
        "name-birth-date": {
            "name": _first(form, "name"),
            "birth_date": _first(form, "birth_date"),
        },
    }.get(way, {})
    context: dict[str, Any] = {
        "user": user,
        "centre": _centre_name(console, user.centre_id),
        "form": {"by": way, **fields},
        "hospital_name": lambda hid: _hospital_name(console, hid),
    }
    try:
        query = SearchIn.model_validate({k: v or None for k, v in fields.items()})
    except ValidationError as exc:
        message = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        context["error"] = ConsoleError(422, "invalid-request", message)
        return _render(request, "search.html", context, status_code=422)
    context["found"] = await console.desk.search(user, query)
    return _render(request, "search.html", context)


# ------------------------------------------------------------------ a case


@router.get("/cases/{case_id}", response_class=HTMLResponse)
async def case_page(request: Request, user: PageUser, case_id: CaseIdPath) -> Response:
    """The case's timeline, its outcome report (prints on A4), its exits, and the
    same person's earlier cases."""
    console = console_of(request)
    found = await console.desk.case(user, case_id)
    facts = found.facts
    return _render(
        request,
        "case.html",
        {
            "user": user,
            "centre": _centre_name(console, user.centre_id),
            "c": found,
            # What the exits' partial (_case_actions.html) takes.
            "case": {
                "case_id": found.case_id,
                "closed": facts.closed,
                "hold_reason": facts.hold_reason,
                "fee_support": facts.fee_support,
                "tasks": found.tasks,
            },
            "timeline": timeline(found),
            "users": console.users,
            "hospital_name": lambda hid: _hospital_name(console, hid),
            "now": datetime.now(UTC),
        },
    )


# ------------------------------------------------------------------ a task


async def _task_page(
    request: Request,
    user: User,
    service: Service,
    task_id: int,
    *,
    error: ConsoleError | None = None,
    notice: str | None = None,
    form: dict[str, list[str]] | None = None,
) -> HTMLResponse:
    console = console_of(request)
    found = await console.desk.detail(user, service, task_id, purpose="task-page")
    detail, task = found.out, found.out.task
    quantities: dict[str, str] = {}
    chosen: dict[str, str] = {}
    starts: dict[str, str] = {}
    if task.kind == "care-plan":
        if form is not None:
            quantities = {code: _first(form, f"qty_{code}") for code in labels.SERVICES}
            chosen = {code: _first(form, f"provider_{code}") for code in labels.SERVICES}
            starts = {code: _first(form, f"start_{code}") for code in labels.SERVICES}
        else:
            # Referral's own starting point: the plan it sets when nobody chooses quantities,
            # each line from the suggested provider, from the default start.
            quantities = {code: str(q) for code, q in found.default_quantities.items()}
    return _render(
        request,
        "task.html",
        {
            "user": user,
            "centre": _centre_name(console, user.centre_id),
            "d": detail,
            "task": task,
            "mine": task.status == "claimed" and task.claimed_by == user.username,
            "users": console.users,
            "colleagues": [
                u for u in console.users.colleagues(user) if u.username != task.claimed_by
            ],
            "hospital_name": lambda hid: _hospital_name(console, hid),
            "error": error,
            "error_text": labels.ERRORS.get(error.code, labels.ERRORS["task-error"])
            if error
            else None,
            "notice": notice if notice in labels.NOTICES else None,
            "quantities": quantities,
            "chosen_providers": chosen,
            "starts": starts,
            "findings": console.findings.findings,
            "form": form or {},
            "now": datetime.now(UTC),
            "today": seoul_date(datetime.now(UTC)),
        },
        status_code=error.status if error else 200,
    )


@router.get("/tasks/{service}/{task_id}", response_class=HTMLResponse)
async def task_page(
    request: Request, user: PageUser, service: Service, task_id: TaskId, notice: str = ""
) -> Response:
    return await _task_page(request, user, service, task_id, notice=notice or None)


@router.post("/tasks/{service}/{task_id}/{action}", response_class=HTMLResponse)
async def task_action(
    request: Request, user: PageUser, service: Service, task_id: TaskId, action: str
) -> Response:
    _same_origin(request)
    console = console_of(request)
    form = await _form(request)
    try:
        if action == "claim":
            await console.desk.claim(user, service, task_id)
            notice = "claimed"
        elif action == "release":
            await console.desk.release(user, service, task_id)
            notice = "released"
        elif action == "reassign":
            to = console.users.get(_first(form, "to"))
            await console.desk.reassign(user, service, task_id, to)
            notice = "reassigned"
        elif action == "complete":
            task = await console.desk.task(user, service, task_id)
            done = await console.desk.complete(user, service, task_id, _result(task.kind, form))
            notice = {"reviewed": "reviewed"}.get(done.outcome, done.outcome)
        else:
            raise ConsoleError(404, "not-found", "no such action")
    except ConsoleError as exc:
        # Not found, or a service down: the error page says so (nothing to show the form on).
        if exc.status == 404 or exc.code == UNAVAILABLE:
            raise
        return await _task_page(request, user, service, task_id, error=exc, form=form)
    return RedirectResponse(
        f"/tasks/{service}/{task_id}?" + urllib.parse.urlencode({"notice": notice}), 303
    )


def _result(kind: str, form: dict[str, list[str]]) -> TaskResult:
    """The form as the API's result model, so both are checked the same way."""
    data: dict[str, Any]
    if kind == "review":
        data = {
            "decision": _first(form, "decision"),
            "reason_code": _first(form, "reason_code") or None,
        }
        if data["decision"] == "eligible":
            data["reason_code"] = None
    elif kind == "care-plan":
        decision = _first(form, "decision") or "plan"
        data = {"decision": decision}
        if decision == "plan":
            lines = []
            for code in labels.SERVICES:
                raw = _first(form, f"qty_{code}")
                if raw in ("", "0"):
                    continue
                if not raw.isdigit():
                    raise ConsoleError(422, "invalid-request", f"{code}: a whole number, please")
                lines.append(
                    {
                        "service": code,
                        "quantity": int(raw),
                        "provider_id": _first(form, f"provider_{code}") or None,
                        "planned_start": _first(form, f"start_{code}") or None,
                    }
                )
            data["lines"] = lines or None
    elif kind == "delivery":
        data = {"line": _first(form, "line")}
        if _first(form, "step") == "start":
            data["started_on"] = _first(form, "started_on") or None
        else:
            data["ended_on"] = _first(form, "ended_on") or None
            data["delivered_units"] = _first(form, "delivered_units") or None
            data["end_reason"] = _first(form, "end_reason") or None
    else:
        reached = _first(form, "reached") != "no"
        data = {"reached": reached}
        if reached:
            data["precautions_acknowledged"] = _first(form, "precautions_acknowledged") == "on"
            # Checkboxes: each ticked code once, in the form's order.
            data["findings"] = list(dict.fromkeys(f for f in form.get("findings") or [] if f))
            data["notes"] = _first(form, "notes") or None
    try:
        result: TaskResult = RESULT_OF_KIND[kind].model_validate(data)  # type: ignore[assignment]
    except ValidationError as exc:
        message = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise ConsoleError(422, "invalid-request", message) from None
    if not isinstance(result, ReviewResult | CarePlanResult | VisitResult | DeliveryResult):
        raise TypeError(f"no task result model for {kind!r}")
    return result


def _centre_name(console: Console, centre_id: str) -> str:
    centre = next((c for c in console.registry.centres if c.id == centre_id), None)
    return f"{centre.name.ko} {centre.name.en}" if centre else centre_id


def _hospital_short(console: Console, hospital_id: str | None) -> str:
    """The hospital's Korean name, short enough for a queue column."""
    if not hospital_id:
        return "—"
    hospital = console.registry.hospital(hospital_id)
    return hospital.name.ko if hospital else hospital_id


def _hospital_name(console: Console, hospital_id: str) -> str:
    hospital = console.registry.hospital(hospital_id)
    return f"{hospital.name.ko} {hospital.name.en}" if hospital else hospital_id
