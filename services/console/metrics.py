"""The console's own metrics, served on a port of their own (not the public one:
the console's pages are exposed to coordinators, its metrics only to the scraper).

Labels are closed sets: a route template (never a path with ids), a service
name, an outcome word. Never a username, an id or a value.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from prometheus_client import Counter, Histogram, start_http_server
from starlette.requests import Request
from starlette.responses import Response

REQUESTS = Counter(
    "carelink_console_requests_total",
    "Requests the console answered, by route template and status class",
    ["route", "outcome"],
)
REQUEST_SECONDS = Histogram(
    "carelink_console_request_seconds",
    "Time the console took to answer, by route template",
    ["route"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
CALLS = Counter(
    "carelink_console_service_calls_total",
    "The console's calls to a service's API: ok, refused (4xx), failed (5xx) or unavailable",
    ["service", "outcome"],
)
CALL_SECONDS = Histogram(
    "carelink_console_service_call_seconds",
    "Time a service's API took to answer the console",
    ["service"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
SIGN_INS = Counter(
    "carelink_console_sign_ins_total",
    "Sign-in attempts: accepted, refused or throttled (a rising refused rate is someone guessing)",
    ["outcome"],
)

# Requests that matched no route (a scanner's probes) share one label value.
UNMATCHED = "unmatched"


def status_class(status: int) -> str:
    return f"{status // 100}xx"


def call_outcome(status: int | None) -> str:
    if status is None:
        return "unavailable"
    if status < 400:
        return "ok"
    return "refused" if status < 500 else "failed"


async def observe_requests(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """HTTP middleware: count and time each answer under its route template."""
    started = time.perf_counter()
    status = 500
    try:
        response = await call_next(request)
        status = response.status_code
        return response
    finally:
        route = request.scope.get("route")
        template = getattr(route, "path", None) or UNMATCHED
        REQUESTS.labels(template, status_class(status)).inc()
        REQUEST_SECONDS.labels(template).observe(time.perf_counter() - started)


def serve(host: str, port: int) -> None:
    """The metrics endpoint on its own port (a daemon thread); 0 = not served."""
    if port:
        start_http_server(port, addr=host)
