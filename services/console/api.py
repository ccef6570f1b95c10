"""The console's JSON API under /api (OpenAPI at /api/openapi.json).

Every route but /api/health and /api/login needs a session token
(`Authorization: Bearer <token>` from POST /api/login, or the pages' cookie).
Errors are `{error, message}`: 401 unauthorized; 403 forbidden; 404 not-found
(also for another centre's tasks); 409 claimed-by-other, lease-expired,
not-claimed, task-closed, policy-incomplete (the year's policy lacks a value
the rule needs); 422 invalid-request, invalid-plan; 503 service-unavailable
(a service the answer needs is down or too slow; the message names it, and
nothing was done, unless it says the outcome is unknown).

Version 1.1.0 (issue 8): the console is a gateway to the services' own APIs;
the routes, bodies and answers are those of 1.0.0, and the 503 answer is now
documented on every route that needs a service.

Version 1.2.0 (issue 9): services are ordered from contracted providers and their
delivery recorded. A care-plan line may name its `provider_id` and `planned_start`;
the `delivery` task kind records each line's start and end (units delivered, a reason
when fewer than ordered); a task's case facts carry the district's providers per
service, the default start and the plan's lines; 409 `invalid-state` when a line
cannot take a step. Everything of 1.1.0 is unchanged.

Version 1.3.0 (issue 9): a visit's `findings` are codes of the findings vocabulary
(deploy/config/findings.yaml), listed with their Korean and English labels by the new
GET /api/findings; anything else is 422 `invalid-request` naming the field (before,
any string was taken and sent on). `notes`, free text, stays in scheduling as before.
Everything else of 1.2.0 is unchanged.

Version 1.4.0 (issue 10): a queue people can work from. GET /api/queue filters by
`hospital`, sorts (`sort`: priority, deadline, discharge, created) and pages with a
cursor (`after` = the previous page's `next`); each task carries `hospital_id` and
`expected_discharge_date`, each queue row its case's `card` (initials, age band,
district, dong). POST /api/search finds the centre's cases by referral id, case id
or name and birth date (audited by intake); GET /api/cases/{case_id} is the case
page's data (tasks, updates sent with their sequence, lines, outcome report, earlier
cases). Everything of 1.3.0 is unchanged.

Also in 1.4.0 (issue 10), the exits and the lead's view: POST /api/cases/{case_id}/cancel
(`deceased`, `transferred`, `declined-by-patient`, `consent-withdrawn`; 409 `case-closed`),
POST /api/tasks/scheduling/{task_id}/reopen (a visit on hold as unreachable; 409
`invalid-state` otherwise), POST /api/cases/{case_id}/fee-support (leads, before the care
plan; 409 `care-plan-set` after it), each audited by the service that owns it and told to
the hospital; GET /api/overdue (leads: the centre's overdue work per task kind and age,
oldest first) and GET /api/overdue/events (leads: `task-overdue` pushed as tasks are
escalated); a visit task's detail carries `contact` (do-not-contact: the social worker,
and no patient phone).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, StringConstraints

from services.console.auth import User
from services.console.desk import LIVE
from services.console.errors import ConsoleError
from services.console.schemas import (
    SERVICE_OF,
    CaseOut,
    CompleteOut,
    ErrorOut,
    FindingOut,
    FindingsOut,
    LoginIn,
    QueueOut,
    ReassignIn,
    SearchIn,
    SearchOut,
    Service,
    TaskDetailOut,
    TaskOut,
    TaskResult,
    TokenOut,
    UserOut,
)
from services.console.state import console_of, token_of
from services.lib.runtime.logging import get_logger
from services.lib.runtime.responses import model_response
from services.lib.tasks.ordering import DEFAULT_SORT, SORT_HELP, Sort

log = get_logger(__name__)
STATUSES = ("open", "claimed", "done", "cancelled", "suspended")


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorOut} for status in statuses}


router = APIRouter(prefix="/api")
TaskId = Annotated[int, Path(ge=1, le=2**63 - 1)]
CaseIdPath = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:-]+$")]


def api_user(request: Request) -> User:
    user = console_of(request).user_from(request)
    if user is None:
        raise ConsoleError(
            401, "unauthorized", "sign in: POST /api/login, then send Authorization: Bearer <token>"
        )
    return user


CurrentUser = Annotated[User, Depends(api_user)]


def user_out(user: User) -> UserOut:
    return UserOut(
        username=user.username,
        display_name=user.display_name,
        centre_id=user.centre_id,
        role=user.role,
    )


def codes_pattern(codes: tuple[str, ...]) -> str:
    """A query value of these codes, comma-separated (or empty): the schema says which
    values a filter takes, so a request the document calls valid is never refused."""
    one = "(?:" + "|".join(re.escape(c) for c in codes) + ")"
    return rf"^\s*(?:{one}\s*(?:,\s*{one}\s*)*)?$"


KINDS_QUERY = Annotated[str, StringConstraints(pattern=codes_pattern(tuple(SERVICE_OF)))]
STATUSES_QUERY = Annotated[str, StringConstraints(pattern=codes_pattern(STATUSES))]
# Hospital ids as the registry spells them; one the registry lacks matches no task.
HOSPITALS_QUERY = Annotated[
    str, StringConstraints(pattern=r"^\s*(?:[a-z0-9-]{1,64}\s*(?:,\s*[a-z0-9-]{1,64}\s*)*)?$")
]


def split_codes(values: list[str] | None, allowed: tuple[str, ...], what: str) -> list[str] | None:
    """`kind=a&kind=b` or `kind=a,b`; empty means no filter; unknown codes are refused."""
    codes = [c.strip() for v in values or [] for c in v.split(",") if c.strip()]
    unknown = sorted(set(codes) - set(allowed))
    if unknown:
        raise ConsoleError(
            422,
            "invalid-request",
            f"unknown {what}: {', '.join(unknown)} (one of {', '.join(allowed)})",
        )
    return codes or None


class HealthOut(BaseModel):
    ok: bool
    checks: dict[str, bool]


@router.get("/health", response_model=HealthOut, responses={503: {"model": HealthOut}})
async def health(request: Request, response: Response) -> HealthOut:
    """Ready when intake, referral and scheduling say they are ready over HTTP
    (their /health/ready; no sign-in needed)."""
    services = console_of(request).services
    answers = await asyncio.gather(*(client.ready() for client in services.all()))
    checks = {client.name: ok for client, ok in zip(services.all(), answers, strict=True)}
    ok = all(checks.values())
    response.status_code = 200 if ok else 503
    return HealthOut(ok=ok, checks=checks)


_RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds to wait before trying again",
        "schema": {"type": "integer"},
    }
}


@router.post(
    "/login",
    response_model=TokenOut,
    responses={
        **_errors(401, 422),
        429: {
            "model": ErrorOut,
            "description": "too many failed sign-ins for the account or from the address",
            "headers": _RETRY_AFTER,
        },
    },
)
async def login(request: Request, credentials: LoginIn) -> TokenOut:
    """Exchange a username and password for a session token (valid 8 hours by default,
    until POST /api/logout). After repeated failures for the account or from the
    address, sign-in answers 429 with Retry-After without checking the password."""
    console = console_of(request)
    attempt = await console.sign_in(request, credentials.username, credentials.password)
    if attempt.retry_after is not None:
        log.info("sign-in throttled", channel="api", retry_after=attempt.retry_after)
        raise ConsoleError(
            429,
            "too-many-attempts",
            f"too many failed sign-ins; try again in {attempt.retry_after} seconds",
            headers={"Retry-After": str(attempt.retry_after)},
        )
    user = attempt.user
    if user is None:
        log.info("sign-in refused", channel="api")
        raise ConsoleError(401, "unauthorized", "unknown username or wrong password")
    log.info("signed in", actor=user.username, channel="api")
    return TokenOut(
        token=console.sessions.issue(user.username),
        expires_in=console.sessions.max_age_s,
        user=user_out(user),
    )


@router.post("/logout", status_code=204, response_class=Response, responses=_errors(401))
async def logout(request: Request, user: CurrentUser) -> Response:
    """End this session on the server: its token is refused from now on."""
    console = console_of(request)
    token = token_of(request)
    if token is not None:
        console.sessions.revoke(token)
    log.info("signed out", actor=user.username, channel="api")
    return Response(status_code=204)


@router.get("/me", response_model=UserOut, responses=_errors(401))
async def me(user: CurrentUser) -> UserOut:
    return user_out(user)


@router.get("/findings", response_model=FindingsOut, responses=_errors(401))
async def findings(request: Request, user: CurrentUser) -> FindingsOut:
    """The visit findings vocabulary: the codes a visit's `findings` may hold, with their
    Korean and English labels, in the order the visit form offers them."""
    vocabulary = console_of(request).findings
    return FindingsOut(
        findings=[FindingOut.model_validate(f.summary()) for f in vocabulary.findings]
    )


@router.get("/queue", response_model=QueueOut, responses=_errors(401, 404, 422, 503))
async def queue(
    request: Request,
    user: CurrentUser,
    kind: Annotated[
        list[KINDS_QUERY] | None,
        Query(description="review, care-plan, pre-discharge-visit, post-discharge-visit, delivery"),
    ] = None,
    status: Annotated[
        list[STATUSES_QUERY] | None,
        Query(description="open, claimed, done, cancelled, suspended (default: open and claimed)"),
    ] = None,
    overdue: Annotated[bool, Query(description="only tasks past their deadline")] = False,
    hospital: Annotated[
        list[HOSPITALS_QUERY] | None,
        Query(description="registered hospital ids, e.g. police-hospital (others match nothing)"),
    ] = None,
    sort: Annotated[Sort, Query(description=SORT_HELP)] = DEFAULT_SORT,
    after: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=400,
            pattern=r"^[A-Za-z0-9_-]+$",
            description="the `next` of the previous page (same sort and filters)",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> Response:
    """A page of the centre's tasks from both services in `sort` order (default: urgent
    first, then by deadline), each with its case's card: the patient's initials and age
    band, district and dong (no other personal detail until a task is opened). Pages
    follow each other with the `next` cursor, which stays right while tasks change."""
    console = console_of(request)
    kinds = split_codes(kind, tuple(SERVICE_OF), "kind")
    statuses = split_codes(status, STATUSES, "status")
    hospitals = [c.strip() for v in hospital or [] for c in v.split(",") if c.strip()] or None
    page = await console.desk.queue_page(
        user,
        kinds=kinds,
        statuses=tuple(statuses) if statuses else LIVE,
        overdue_only=overdue,
        hospitals=hospitals,
        sort=sort,
        after=after,
        limit=limit,
    )
    # Serialised once: services.lib.runtime.responses (issue 12).
    return model_response(QueueOut(centre_id=user.centre_id, tasks=page.rows, next=page.next))


@router.post("/search", response_model=SearchOut, responses=_errors(401, 422, 503))
async def search(request: Request, user: CurrentUser, query: SearchIn) -> SearchOut:
    """Search your centre's cases by the hospital's referral id, the case id, or name and
    birth date (one of them). Each search is recorded in intake's access audit like a
    view; the query travels in the body, never in a URL."""
    return await console_of(request).desk.search(user, query)


@router.get("/cases/{case_id}", response_model=CaseOut, responses=_errors(401, 404, 422, 503))
async def case(request: Request, user: CurrentUser, case_id: CaseIdPath) -> CaseOut:
    """A case of your centre: its card, facts, every task, every update sent to the
    hospitals with its sequence, the plan's lines, the outcome report once closed, and
    the same person's earlier closed cases."""
    return await console_of(request).desk.case(user, case_id)


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "server-sent events"},
        **_errors(401),
    },
)
async def events(request: Request, user: CurrentUser) -> StreamingResponse:
    """Server-sent events: `queue-changed` whenever the centre's open or claimed tasks
    change (looked for every 2 s), `ready` once connected, comments as keep-alive."""
    console = console_of(request)

    async def stream() -> AsyncIterator[str]:
        async with console.watch.watching(user.centre_id):
            seen = console.watch.version(user.centre_id)
            yield "retry: 5000\n\n"
            yield _event("ready", {"centre_id": user.centre_id, "version": seen})
            while not console.stopping.is_set() and not console.watch.closed:
                version = await console.watch.wait(
                    user.centre_id, seen, timeout=console.settings.events_keepalive_s
                )
                if version != seen:
                    seen = version
                    yield _event("queue-changed", {"centre_id": user.centre_id, "version": seen})
                else:
                    yield ": keep-alive\n\n"

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


@router.get(
    "/tasks/{service}/{task_id}",
    response_model=TaskDetailOut,
    responses=_errors(401, 404, 422, 503),
)
async def task_detail(
    request: Request, user: CurrentUser, service: Service, task_id: TaskId
) -> TaskDetailOut:
    """The task, the case's facts and tasks, and the patient's personal details.
    Reading this is recorded in intake's access audit."""
    detail = await console_of(request).desk.detail(
        user, service, task_id, purpose="api-task-detail"
    )
    return detail.out


@router.post(
    "/tasks/{service}/{task_id}/claim",
    response_model=TaskOut,
    responses=_errors(401, 404, 409, 422, 503),
)
async def claim(request: Request, user: CurrentUser, service: Service, task_id: TaskId) -> TaskOut:
    """Take the task for yourself under a lease (claiming again renews it)."""
    return await console_of(request).desk.claim(user, service, task_id)


@router.post(
    "/tasks/{service}/{task_id}/release",
    response_model=TaskOut,
    responses=_errors(401, 404, 409, 422, 503),
)
async def release(
    request: Request, user: CurrentUser, service: Service, task_id: TaskId
) -> TaskOut:
    """Give a task you hold back to the queue."""
    return await console_of(request).desk.release(user, service, task_id)


@router.post(
    "/tasks/{service}/{task_id}/reassign",
    response_model=TaskOut,
    responses=_errors(401, 403, 404, 409, 422, 503),
)
async def reassign(
    request: Request, user: CurrentUser, service: Service, task_id: TaskId, body: ReassignIn
) -> TaskOut:
    """A lead hands a live task to a colleague of the same centre: it becomes theirs."""
    console = console_of(request)
    return await console.desk.reassign(user, service, task_id, console.users.get(body.to))


@router.post(
    "/tasks/{service}/{task_id}/complete",
    response_model=CompleteOut,
    responses=_errors(401, 404, 409, 422, 503),
)
async def complete(
    request: Request,
    user: CurrentUser,
    service: Service,
    task_id: TaskId,
    result: Annotated[TaskResult, Body()],
) -> CompleteOut:
    """Complete a task you hold with the result its kind takes: review
    `{decision, reason_code}`; care plan `{lines: [{service, quantity, provider_id,
    planned_start}]}` or `{decision: "waitlist" | "could-not-deliver"}`; visits
    `{reached: true, precautions_acknowledged, findings, notes}` or `{reached: false}`
    (a failed contact attempt; the task stays yours); delivery, one step of one line
    `{line, started_on}` or `{line, ended_on, delivered_units, end_reason}` (the task
    stays yours until the last line ends)."""
    return await console_of(request).desk.complete(user, service, task_id, result)
