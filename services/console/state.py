"""What the routes share: the console's parts, built once by the app's lifespan."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from fastapi import Request

from services.console.auth import COOKIE, User, UserBook, bearer
from services.console.clients import Services
from services.console.desk import Desk
from services.console.metrics import SIGN_INS
from services.console.settings import ConsoleSettings
from services.console.watch import QueueWatch
from services.lib.policy import Findings, Registry
from services.lib.signin import SessionStore, SignInThrottle


@dataclass(frozen=True)
class SignIn:
    """A sign-in's outcome: the user, or why not (`retry_after` set: throttled)."""

    user: User | None
    retry_after: int | None = None


@dataclass
class Console:
    settings: ConsoleSettings
    users: UserBook
    sessions: SessionStore
    throttle: SignInThrottle
    desk: Desk
    watch: QueueWatch
    registry: Registry
    # The visit findings vocabulary: the visit form's checkboxes, /api/findings.
    findings: Findings
    services: Services
    stopping: asyncio.Event

    def user_from(self, request: Request) -> User | None:
        """The signed-in user: a Bearer token (API clients) or the session cookie (pages)."""
        token = token_of(request)
        if not token:
            return None
        username = self.sessions.username(token)
        return self.users.get(username) if username else None

    async def sign_in(self, request: Request, username: str, password: str) -> SignIn:
        """Checks a password unless the account or the address is throttled; counts failures."""
        address = request.client.host if request.client else "unknown"
        wait = self.throttle.retry_after(username, address)
        if wait is not None:
            SIGN_INS.labels("throttled").inc()
            return SignIn(None, wait)
        user = await self.users.authenticate(username, password)
        if user is None:
            self.throttle.failed(username, address)
        else:
            self.throttle.succeeded(username)
        return SignIn(user)


def token_of(request: Request) -> str | None:
    return bearer(request.headers.get("authorization")) or request.cookies.get(COOKIE)


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console
