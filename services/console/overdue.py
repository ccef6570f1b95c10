"""The lead's view of the centre's overdue work (issue 10): `/overdue` and `/api/overdue`.

Two sources, on purpose:

- **Durable**: the counts and the list are computed on each request from the task
  services' own APIs (`/v1/queue?overdue=true` of referral and scheduling), which
  hold the truth: a task that was done, reassigned or re-dated meanwhile is shown as
  it is now. The console has no database, and needs none for this.
- **Live**: the deadline watchers announce each task as it becomes overdue on
  `care.escalations` (contracts.escalations.TaskOverdue). The console follows that
  topic with its own consumer group (services/console/escalations.py) and pushes each
  one to the centre's signed-in leads (`/api/overdue/events`, server-sent events), so
  a lead hears of it without polling. Missing a push (a restart) loses nothing: the
  durable view shows the task anyway.

Leads only: a lead hands overdue work to a colleague from here (the existing
reassign of the task services). Ages are how long a task is past its deadline.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from pydantic import BaseModel

from services.console import labels, pages
from services.console.api import CurrentUser, _errors
from services.console.auth import User
from services.console.clients import gather_all
from services.console.desk import SERVICES, on_behalf_of
from services.console.errors import ConsoleError
from services.console.escalations import escalations_of
from services.console.schemas import TaskOut
from services.console.state import console_of

# How long past the deadline, in buckets a lead acts on (upper bounds, the last open).
AGE_BUCKETS: tuple[tuple[str, timedelta | None], ...] = (
    ("under-1-day", timedelta(days=1)),
    ("1-3-days", timedelta(days=3)),
    ("3-7-days", timedelta(days=7)),
    ("over-7-days", None),
)
AGE_LABELS = {
    "under-1-day": "1일 미만 Under a day",
    "1-3-days": "1~3일 1-3 days",
    "3-7-days": "3~7일 3-7 days",
    "over-7-days": "7일 초과 Over 7 days",
}
# The most overdue tasks one view lists (the counts cover them all).
MAX_LISTED = 1000


class KindCounts(BaseModel):
    kind: str
    total: int
    by_age: dict[str, int]


class OverdueTask(BaseModel):
    task: TaskOut
    overdue_for_hours: float
    age: str


class OverdueOut(BaseModel):
    centre_id: str
    as_of: datetime
    total: int
    by_kind: list[KindCounts]
    tasks: list[OverdueTask]


def age_bucket(overdue_for: timedelta) -> str:
    for name, limit in AGE_BUCKETS:
        if limit is None or overdue_for < limit:
            return name
    raise AssertionError("the last bucket is open")


def summarise(centre_id: str, tasks: Sequence[TaskOut], now: datetime) -> OverdueOut:
    """Counts per task kind and age bucket, and the tasks oldest first (the longest past
    its deadline at the top). Only live tasks past their deadline count."""
    late = sorted(
        (t for t in tasks if t.status in ("open", "claimed") and t.due_at < now),
        key=lambda t: (t.due_at, t.service, t.id),
    )
    counts: dict[str, dict[str, int]] = {}
    listed: list[OverdueTask] = []
    for task in late:
        age = age_bucket(now - task.due_at)
        kind = counts.setdefault(task.kind, dict.fromkeys(AGE_LABELS, 0))
        kind[age] += 1
        if len(listed) < MAX_LISTED:
            hours = round((now - task.due_at).total_seconds() / 3600, 1)
            listed.append(OverdueTask(task=task, overdue_for_hours=hours, age=age))
    by_kind = [
        KindCounts(kind=kind, total=sum(ages.values()), by_age=ages)
        for kind, ages in sorted(counts.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
    ]
    return OverdueOut(
        centre_id=centre_id, as_of=now, total=len(late), by_kind=by_kind, tasks=listed
    )


def _lead(user: User) -> None:
    if not user.is_lead:
        raise ConsoleError(403, "forbidden", "the overdue view is for leads")


async def overdue_of(request: Request, user: User) -> OverdueOut:
    """The centre's overdue work, read from both task services now."""
    services = console_of(request).services
    params = {"status": "open,claimed", "overdue": "true", "limit": MAX_LISTED}
    answers = await gather_all(
        *(
            services.owner(service).get("/v1/queue", on_behalf_of(user), params)
            for service in SERVICES
        )
    )
    found = [TaskOut.model_validate(t) for answer in answers for t in answer["tasks"]]
    return summarise(user.centre_id, found, datetime.now(UTC))


# ------------------------------------------------------------------ the API

api = APIRouter(prefix="/api")


@api.get("/overdue", response_model=OverdueOut, responses=_errors(401, 403, 503))
async def overdue_route(request: Request, user: CurrentUser) -> OverdueOut:
    """Leads: the centre's overdue work, counted per task kind and by how long past the
    deadline (under a day, 1-3, 3-7, over 7 days), and listed oldest first; hand a task
    on with POST /api/tasks/{service}/{task_id}/reassign."""
    _lead(user)
    return await overdue_of(request, user)


@api.get(
    "/overdue/events",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "server-sent events"},
        **_errors(401, 403),
    },
)
async def overdue_events(request: Request, user: CurrentUser) -> StreamingResponse:
    """Leads: server-sent events, `task-overdue` for each of the centre's tasks as its
    deadline watcher escalates it (from care.escalations; ids, kind and times only),
    `ready` once connected, comments as keep-alive."""
    _lead(user)
    console = console_of(request)
    feed = escalations_of(request.app)

    async def stream() -> AsyncIterator[str]:
        seen = feed.version(user.centre_id)
        yield "retry: 5000\n\n"
        yield _event("ready", {"centre_id": user.centre_id, "following": feed.following})
        while not console.stopping.is_set():
            version = await feed.wait(
                user.centre_id, seen, timeout=console.settings.events_keepalive_s
            )
            if version == seen:
                yield ": keep-alive\n\n"
                continue
            for item in feed.since(user.centre_id, seen):
                yield _event("task-overdue", item)
            seen = version

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, default=str)}\n\n"


# ------------------------------------------------------------------ the page

page = APIRouter(include_in_schema=False)


@page.get("/overdue", response_class=HTMLResponse)
async def overdue_page(request: Request, user: pages.PageUser) -> Response:
    _lead(user)
    console = console_of(request)
    view = await overdue_of(request, user)
    return pages.TEMPLATES.TemplateResponse(
        request,
        "overdue.html",
        {
            "user": user,
            "centre": pages._centre_name(console, user.centre_id),
            "view": view,
            "ages": AGE_LABELS,
            "kinds": labels.KINDS,
            "users": console.users,
            "colleagues": console.users.colleagues(user),
        },
    )
