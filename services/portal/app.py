"""Composition root of the social workers' portal.

The portal is a service of its own (services.lib.runtime.service): its database
(drafts, submissions, what it sent, the updates it read), its outbox relay
publishing the hospitals' events, and its consumer following the served hospitals'
updates topics (services/lib/hospitalside). The web app (`create_app`) is mounted
on the service's HTTP server beside the health probes; it is built without
connecting to anything, so its OpenAPI document needs no server.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.lib import hospitalside
from services.lib.hospitalside.updates import UpdatesFollower, updates_topics
from services.lib.runtime.logging import get_logger
from services.lib.runtime.service import ServiceContext, ServiceSpec
from services.lib.signin import SessionStore, SignInThrottle
from services.lib.web import SecurityHeaders
from services.portal import api, pages
from services.portal.errors import PortalError
from services.portal.settings import PortalSettings
from services.portal.state import NotReady, Portal
from services.portal.users import UserBook

log = get_logger(__name__)
STATIC = Path(__file__).with_name("static")
API_VERSION = "1.0.0"
_ERROR_CODES = {
    400: "invalid-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    413: "invalid-request",
    415: "invalid-request",
    422: "invalid-request",
    503: "unavailable",
}


def create_app() -> FastAPI:
    """The portal's pages and /api, without its parts (attached by `attach`)."""
    app = FastAPI(
        title="carelink portal API",
        summary="Medical social workers' referrals, as their hospital's events.",
        description=(api.__doc__ or "").strip(),
        version=API_VERSION,
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _install_error_handlers(app)
    app.add_middleware(SecurityHeaders)
    return app


def attach(app: FastAPI, portal: Portal) -> None:
    app.state.portal = portal


def build_spec(
    settings: PortalSettings, users: UserBook, served: list[str]
) -> ServiceSpec[PortalSettings]:
    """The portal as a service: its settings, users and served hospitals checked
    beforehand by `services.portal.__main__`."""

    def routes(server: FastAPI, context: ServiceContext[PortalSettings]) -> None:
        key = settings.portal_secret_key
        if key is None:
            log.warning(
                "no CARELINK_PORTAL_SECRET_KEY: using a random key for this process; "
                "sessions end when the portal restarts"
            )
        web = create_app()
        attach(
            web,
            Portal(
                settings=settings,
                pool=context.pool,
                users=users,
                sessions=SessionStore(
                    key.get_secret_value() if key else secrets.token_urlsafe(32),
                    max_age_s=int(settings.portal_session_hours * 3600),
                    salt="carelink.portal.session",
                ),
                throttle=SignInThrottle(),
                registry=context.registry,
            ),
        )
        # After the probes (/health/*, /metrics): everything else is the portal's.
        server.mount("/", web)
        log.info("portal ready", users=len(users.all()), hospitals=served)

    return ServiceSpec(
        name="portal",
        settings=lambda: settings,
        migrations=Path(__file__).with_name("migrations"),
        extra_migrations=[("hospitalside", hospitalside.MIGRATIONS)],
        # Only the served hospitals' updates: never another hospital's.
        topics=lambda _registry: updates_topics(served),
        handler=lambda _context: UpdatesFollower(served),
        routes=routes,
    )


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path == "/api"


def _error_response(request: Request, status: int, code: str, message: str) -> Response:
    if _is_api(request):
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse({"error": code, "message": message}, status, headers=headers)
    return pages.TEMPLATES.TemplateResponse(
        request,
        "error.html",
        {"status": status, "message": message, "user": None},
        status_code=status,
    )


def _install_error_handlers(app: FastAPI) -> None:
    async def portal_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, PortalError):
            raise TypeError(type(exc).__name__) from exc
        return _error_response(request, exc.status, exc.code, exc.message)

    async def not_ready(request: Request, exc: Exception) -> Response:
        return _error_response(request, 503, "unavailable", "the portal is starting")

    async def login_required(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, pages.LoginRequired):
            raise TypeError(type(exc).__name__) from exc
        return pages.login_redirect(exc.next_url)

    async def invalid(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, RequestValidationError):
            raise TypeError(type(exc).__name__) from exc
        # Where and what, never the values sent: they may be personal.
        problems = [
            f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: "
            f"{str(e.get('msg', 'invalid')).removeprefix('Value error, ')}"
            for e in exc.errors()
        ]
        return _error_response(request, 422, "invalid-request", "; ".join(problems[:10]))

    async def http_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, StarletteHTTPException):
            raise TypeError(type(exc).__name__) from exc
        code = _ERROR_CODES.get(exc.status_code, "error")
        return _error_response(request, exc.status_code, code, str(exc.detail))

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.error("request failed", path=request.url.path, error=type(exc).__name__)
        return _error_response(request, 500, "internal-error", "something went wrong; it is logged")

    app.add_exception_handler(PortalError, portal_error)
    app.add_exception_handler(NotReady, not_ready)
    app.add_exception_handler(pages.LoginRequired, login_required)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
