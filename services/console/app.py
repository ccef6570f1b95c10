"""Composition root of the coordinators' console: the FastAPI app, its HTTP
clients for the services' APIs (intake for personal details, referral and
scheduling for tasks and case facts), and its lifespan.

The console is a gateway: it holds no connection to any service's database.
Nothing connects when the app is created, so the OpenAPI document can be
generated without any server.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.console import api, escalations, exits, metrics, overdue, pages
from services.console.auth import load_users
from services.console.clients import ServiceClient, Services
from services.console.desk import Desk
from services.console.errors import UNAVAILABLE, ConsoleError
from services.console.settings import ConsoleSettings
from services.console.state import Console
from services.console.watch import QueueWatch
from services.lib.policy import load_findings, load_registry
from services.lib.runtime import tracing
from services.lib.runtime.logging import get_logger
from services.lib.runtime.settings import KafkaSettings
from services.lib.signin import SessionStore, SignInThrottle
from services.lib.web import SecurityHeaders

log = get_logger(__name__)
STATIC = Path(__file__).with_name("static")
# Not traced: probes, the live queue's event stream, static files.
_UNTRACED_URLS = ("/api/health", "/api/events", "/static/")
_ERROR_CODES = {
    400: "invalid-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    413: "invalid-request",
    415: "invalid-request",
    422: "invalid-request",
    429: "too-many-attempts",
    503: UNAVAILABLE,
}


# The API's own version (not the package's): raise it when the API changes.
API_VERSION = "1.6.0"


def create_app(settings: ConsoleSettings | None = None) -> FastAPI:
    settings = settings or ConsoleSettings()
    # Unset or empty (compose passes an empty CONSOLE_SECRET_KEY through): a random key.
    given = settings.secret_key.get_secret_value() if settings.secret_key else ""
    generated_key = not given
    secret = given or secrets.token_urlsafe(32)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if generated_key:
            log.warning(
                "no CARELINK_CONSOLE_SECRET_KEY: using a random key for this process; "
                "sessions end when the console restarts"
            )
        users = load_users(settings.users_file)
        registry = load_registry(settings.registry_file)
        findings = load_findings(settings.findings_file)
        services = _clients(settings)
        if settings.api_token is None:
            log.warning(
                "no CARELINK_CONSOLE_API_TOKEN: the services refuse the console's calls "
                "until it is set"
            )
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        app.state.request_stop = lambda: loop.call_soon_threadsafe(stopping.set)
        watch = QueueWatch(services, interval_s=settings.events_poll_interval_s)
        app.state.console = Console(
            settings=settings,
            users=users,
            sessions=SessionStore(
                secret,
                max_age_s=int(settings.session_hours * 3600),
                salt="carelink.console.session",
            ),
            throttle=SignInThrottle(
                account_limit=settings.signin_account_limit,
                address_limit=settings.signin_address_limit,
                window_s=settings.signin_window_s,
            ),
            desk=Desk(services),
            watch=watch,
            registry=registry,
            findings=findings,
            services=services,
            stopping=stopping,
        )
        # Its polling of the services is nobody's request: not traced.
        with tracing.untraced():
            watcher = asyncio.create_task(watch.run(stopping), name="queue-watch")
            # care.escalations, pushed live to leads (issue 10); off unless configured.
            following = (
                asyncio.create_task(
                    escalations.follow(
                        escalations.escalations_of(app),
                        KafkaSettings(),
                        stopping,
                        group_prefix=settings.group_prefix,
                    ),
                    name="escalations",
                )
                if settings.follow_escalations
                else None
            )
        log.info("console started", users=len(users.all()), port=settings.port)
        try:
            yield
        finally:
            stopping.set()
            await asyncio.gather(watcher, return_exceptions=True)
            if following is not None:
                following.cancel()
                await asyncio.gather(following, return_exceptions=True)
            await services.aclose()
            log.info("console stopped")
            tracing.shutdown()

    app = FastAPI(
        title="carelink console API",
        summary="Care coordinators' work: the centre's task queue, claiming and completing tasks.",
        description=(api.__doc__ or "").strip(),
        version=API_VERSION,
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.include_router(api.router)
    app.include_router(exits.api)
    app.include_router(overdue.api)
    app.include_router(pages.router)
    app.include_router(exits.forms)
    app.include_router(overdue.page)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _install_error_handlers(app)
    app.add_middleware(SecurityHeaders)
    app.middleware("http")(metrics.observe_requests)
    # Traces (its requests, and its calls to the services, which continue them) only when
    # the standard OTEL_* settings ask for them: services.lib.runtime.tracing.
    tracing.setup("console")
    tracing.instrument_app(app, untraced_urls=_UNTRACED_URLS)
    return app


def _clients(settings: ConsoleSettings) -> Services:
    token = settings.api_token.get_secret_value() if settings.api_token else ""

    def client(name: str, url: str) -> ServiceClient:
        return ServiceClient(
            name,
            url,
            token,
            timeout_s=settings.service_timeout_s,
            read_retries=settings.read_retries,
        )

    return Services(
        intake=client("intake", settings.intake_url),
        referral=client("referral", settings.referral_url),
        scheduling=client("scheduling", settings.scheduling_url),
        outcome=client("outcome", settings.outcome_url),
    )


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path == "/api"


def _error_response(
    request: Request,
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
) -> Response:
    if _is_api(request):
        headers = {**(headers or {}), **({"WWW-Authenticate": "Bearer"} if status == 401 else {})}
        return JSONResponse({"error": code, "message": message}, status, headers=headers or None)
    return pages.TEMPLATES.TemplateResponse(
        request,
        "error.html",
        {"status": status, "message": message, "user": None, "centre": ""},
        status_code=status,
        headers=headers,
    )


def _install_error_handlers(app: FastAPI) -> None:
    async def console_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, ConsoleError):
            raise TypeError(f"console_error got {type(exc).__name__}") from exc
        return _error_response(request, exc.status, exc.code, exc.message, exc.headers)

    async def login_required(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, pages.LoginRequired):
            raise TypeError(f"login_required got {type(exc).__name__}") from exc
        return pages.login_redirect(exc.next_url)

    async def invalid(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, RequestValidationError):
            raise TypeError(f"invalid got {type(exc).__name__}") from exc
        # Where and what, never the values sent: they may be personal.
        problems = [
            f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: "
            f"{str(e.get('msg', 'invalid')).removeprefix('Value error, ')}"
            for e in exc.errors()
        ]
        return _error_response(request, 422, "invalid-request", "; ".join(problems[:10]))

    async def http_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, StarletteHTTPException):
            raise TypeError(f"http_error got {type(exc).__name__}") from exc
        code = _ERROR_CODES.get(exc.status_code, "error")
        return _error_response(request, exc.status_code, code, str(exc.detail))

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.error("request failed", path=request.url.path, error=type(exc).__name__)
        return _error_response(request, 500, "internal-error", "something went wrong; it is logged")

    app.add_exception_handler(ConsoleError, console_error)
    app.add_exception_handler(pages.LoginRequired, login_required)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
