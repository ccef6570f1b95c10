"""What the routes share: the console's parts, built once by the app's lifespan."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from fastapi import Request

from services.console.auth import COOKIE, Sessions, User, UserBook, bearer
from services.console.clients import Services
from services.console.desk import Desk
from services.console.settings import ConsoleSettings
from services.console.watch import QueueWatch
from services.lib.policy import Findings, Registry


@dataclass
class Console:
    settings: ConsoleSettings
    users: UserBook
    sessions: Sessions
    desk: Desk
    watch: QueueWatch
    registry: Registry
    # The visit findings vocabulary: the visit form's checkboxes, /api/findings.
    findings: Findings
    services: Services
    stopping: asyncio.Event

    def user_from(self, request: Request) -> User | None:
        """The signed-in user: a Bearer token (API clients) or the session cookie (pages)."""
        token = bearer(request.headers.get("authorization")) or request.cookies.get(COOKIE)
        if not token:
            return None
        username = self.sessions.username(token)
        return self.users.get(username) if username else None


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console
