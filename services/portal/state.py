"""What the routes share: the portal's parts, attached when the service starts."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from fastapi import Request

from services.lib.policy import Registry
from services.lib.signin import SessionStore, SignInThrottle
from services.portal.settings import PortalSettings
from services.portal.users import User, UserBook

COOKIE = "carelink_portal_session"


@dataclass
class Portal:
    settings: PortalSettings
    pool: asyncpg.Pool
    users: UserBook
    sessions: SessionStore
    throttle: SignInThrottle
    registry: Registry

    def user_from(self, request: Request) -> User | None:
        """The signed-in user: a Bearer token (API clients) or the session cookie (pages)."""
        token = bearer(request.headers.get("authorization")) or request.cookies.get(COOKIE)
        if not token:
            return None
        username = self.sessions.username(token)
        # Looked up on every request: a user removed from the file is signed out.
        return self.users.get(username) if username else None

    def hospital_name(self, hospital_id: str) -> str:
        hospital = self.registry.hospital(hospital_id)
        if hospital is None:
            return hospital_id
        return f"{hospital.name.ko} {hospital.name.en}"


def bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


class NotReady(Exception):
    """A request before the service attached its parts (starting up)."""


def portal_of(request: Request) -> Portal:
    portal = getattr(request.app.state, "portal", None)
    if not isinstance(portal, Portal):
        raise NotReady
    return portal
