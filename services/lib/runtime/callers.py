"""Who may call a service's HTTP API, and for which coordinator.

Each deployable that calls a service (today the console) has its own secret
token, configured in the called service's settings: `CARELINK_API_CALLERS`, a
JSON map of caller name to token, e.g. `{"console": "<long random token>"}`.
It is empty by default, so until an operator configures it every call is
refused (401): no default credential can work in production.

A caller sends `Authorization: Bearer <its token>` and says whom the call is
for: the coordinator's username (`X-Carelink-Actor`), centre
(`X-Carelink-Centre`) and role (`X-Carelink-Role`, `coordinator` or `lead`;
`coordinator` when absent, the lesser right). The caller signed its users in,
so the service takes these from it; it scopes every read and write to that
centre, and another centre's task or case does not exist for the call (404).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from fastapi import Request
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.lib.runtime.api_errors import ApiError
from services.lib.runtime.logging import get_logger

log = get_logger(__name__)

ACTOR_HEADER = "X-Carelink-Actor"
CENTRE_HEADER = "X-Carelink-Centre"
ROLE_HEADER = "X-Carelink-Role"
# Long enough that guessing is hopeless; `secrets.token_urlsafe(32)` gives 43 characters.
MIN_TOKEN_LENGTH = 16
Role = Literal["coordinator", "lead"]
_ROLES: tuple[Role, ...] = ("coordinator", "lead")
# ASCII only: header values are ASCII on the wire.
_USERNAME = re.compile(r"[\w.@+:-]{1,100}", re.ASCII)
_CENTRE = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")


class CallerSettings(BaseSettings):
    """A mixin for the settings of a service that serves an HTTP API."""

    # The same prefix as ServiceSettings: as a mixin, its config merges with the service's.
    model_config = SettingsConfigDict(env_prefix="CARELINK_", extra="ignore")

    # Caller name -> its secret token (CARELINK_API_CALLERS, JSON). Empty: every call is 401.
    api_callers: dict[str, SecretStr] = Field(default_factory=dict)


@dataclass(frozen=True)
class Actor:
    """A coordinator's call, as the calling deployable vouches for it."""

    caller: str
    username: str
    centre_id: str
    role: Role

    @property
    def is_lead(self) -> bool:
        return self.role == "lead"


def _digest(token: str) -> bytes:
    # Compared as digests: equal lengths, so the comparison time says nothing about the token.
    return hashlib.sha256(token.encode()).digest()


class Callers:
    def __init__(self, tokens: Mapping[str, SecretStr]) -> None:
        # Checked here, not by the settings model: its errors would print the token.
        short = sorted(n for n, t in tokens.items() if len(t.get_secret_value()) < MIN_TOKEN_LENGTH)
        if short:
            log.warning(
                "API tokens too short, refused",
                callers=short,
                min_length=MIN_TOKEN_LENGTH,
            )
        self._digests = {
            name: _digest(token.get_secret_value())
            for name, token in tokens.items()
            if name not in short
        }

    @property
    def configured(self) -> bool:
        return bool(self._digests)

    def caller(self, authorization: str | None) -> str | None:
        """The caller whose token this is; every token is compared, in constant time."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        presented = _digest(token.strip())
        found = None
        for name, digest in self._digests.items():
            if hmac.compare_digest(presented, digest):
                found = name
        return found

    def actor(self, request: Request) -> Actor:
        """The FastAPI dependency of every API route: 401 first, then the coordinator."""
        caller = self.caller(request.headers.get("authorization"))
        if caller is None:
            raise ApiError(
                401, "unauthorized", "send Authorization: Bearer <the caller's API token>"
            )
        username = request.headers.get(ACTOR_HEADER, "")
        centre_id = request.headers.get(CENTRE_HEADER, "")
        role = request.headers.get(ROLE_HEADER, "coordinator")
        if not _USERNAME.fullmatch(username):
            raise ApiError(422, "invalid-request", f"header {ACTOR_HEADER}: a username is required")
        if not _CENTRE.fullmatch(centre_id):
            raise ApiError(
                422, "invalid-request", f"header {CENTRE_HEADER}: a centre id is required"
            )
        if role not in _ROLES:
            raise ApiError(
                422, "invalid-request", f"header {ROLE_HEADER}: one of {', '.join(_ROLES)}"
            )
        return Actor(caller=caller, username=username, centre_id=centre_id, role=role)  # type: ignore[arg-type]


def actor_headers(token: str, username: str, centre_id: str, role: str) -> dict[str, str]:
    """The headers a caller sends (the console's clients and the tests use this)."""
    return {
        "Authorization": f"Bearer {token}",
        ACTOR_HEADER: username,
        CENTRE_HEADER: centre_id,
        ROLE_HEADER: role,
    }
