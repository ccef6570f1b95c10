"""The portal's settings: the services' shared `CARELINK_*` variables (database,
Kafka, logging, registry; see services.lib.runtime.settings) and its own
`CARELINK_PORTAL_*` ones."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from services.lib.runtime.settings import REPO_ROOT, ServiceSettings

DEFAULT_PORT = 8190
DEMO_USERS_FILE = REPO_ROOT / "deploy" / "config" / "portal-users.yaml"


class PortalSettings(ServiceSettings):
    service: Literal["portal"] = "portal"
    # The pages, the portal's /api and the health probes share this port.
    health_port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    # CARELINK_PORTAL_SECRET_KEY signs session tokens. Unset: a random key per process
    # in a local run (sessions end at a restart); outside a local run the portal
    # refuses to start without one (services.lib.signin.startup).
    portal_secret_key: SecretStr | None = None
    # CARELINK_PORTAL_USERS_FILE: the social workers who may sign in, each with the one
    # hospital they refer for (Argon2id hashes only; python -m services.portal.users).
    portal_users_file: Path = DEMO_USERS_FILE
    # CARELINK_PORTAL_HOSPITALS: the hospitals this portal serves, comma-separated; it
    # reads only their updates topics. Empty: every hospital of the users file.
    portal_hospitals: str = ""
    portal_session_hours: float = Field(default=8.0, gt=0, le=24)
    # Set behind TLS: browsers then send the session cookie over HTTPS only.
    portal_cookie_secure: bool = False

    def served_hospitals(self, user_hospitals: set[str]) -> list[str]:
        listed = {h.strip() for h in self.portal_hospitals.split(",") if h.strip()}
        return sorted(listed or user_hospitals)
