"""The console's settings: environment variables prefixed `CARELINK_CONSOLE_`.

The console is a gateway: it holds no database URL, only where the services'
HTTP APIs are and its own credential for them. What a service decides with its
own settings (the lease length, the contact-attempt limit) stays there. A few
settings are shared with the services and fall back to their plain
`CARELINK_` names (logging, the registry and findings files).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.lib.runtime.settings import REPO_ROOT

DEFAULT_PORT = 8180


def _both(name: str) -> AliasChoices:
    return AliasChoices(f"CARELINK_CONSOLE_{name}", f"CARELINK_{name}")


class ConsoleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CARELINK_CONSOLE_", extra="ignore")

    host: str = "127.0.0.1"
    # `local` (CARELINK_ENV=local, set by the local stack and the tests) allows the demo
    # accounts and a missing or published secret key; anything else is a deployment,
    # where the console refuses to start with them (exit 2). services.lib.signin.startup.
    environment: str = Field(default="", validation_alias=AliasChoices("CARELINK_ENV"))
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    # Signs session tokens. Unset: a random key per process (logged as a warning), so
    # sessions end when the console restarts and two instances do not share them.
    secret_key: SecretStr | None = None
    users_file: Path = REPO_ROOT / "deploy" / "config" / "users.yaml"
    session_hours: float = Field(default=8.0, gt=0, le=24)
    # Set behind TLS: browsers then send the session cookie over HTTPS only.
    cookie_secure: bool = False
    # Failed sign-ins allowed per account and per client address within the window,
    # after which sign-in answers 429 with Retry-After until the window ends.
    signin_account_limit: int = Field(default=5, ge=1, le=1000)
    signin_address_limit: int = Field(default=50, ge=1, le=100_000)
    signin_window_s: float = Field(default=900.0, gt=0, le=86_400)
    # Behind a reverse proxy every request comes from the proxy's address, which would
    # make the per-address limit one for everybody: name the proxies (comma-separated
    # addresses, as uvicorn's --forwarded-allow-ips) so X-Forwarded-For is believed.
    forwarded_allow_ips: str | None = None

    # The services' HTTP APIs (each on its own port; the local defaults of `make run`).
    intake_url: str = "http://127.0.0.1:8181"
    referral_url: str = "http://127.0.0.1:8182"
    scheduling_url: str = "http://127.0.0.1:8183"
    # What the hospitals were told (the case page's timeline and outcome report).
    outcome_url: str = "http://127.0.0.1:8184"
    # The console's credential for them: each service lists it in its CARELINK_API_CALLERS
    # as "console". Unset: every call is refused and the console says so (503).
    api_token: SecretStr | None = None
    # One call to a service; a read is tried again this many times after a timeout,
    # a lost connection or a 502/503/504 (an action never is).
    service_timeout_s: float = Field(default=5.0, gt=0, le=60)
    read_retries: int = Field(default=2, ge=0, le=5)

    # The console's metrics (/metrics) on a port of their own, for the scraper only;
    # 0 = not served. Bind to 0.0.0.0 in a container so the scraper can reach it.
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=0, ge=0, le=65535)

    # How often the queue's live refresh asks the task services whether a queue changed.
    events_poll_interval_s: float = Field(default=2.0, gt=0)
    events_keepalive_s: float = Field(default=15.0, gt=0)
    # Follow care.escalations and push each newly overdue task to the centre's leads
    # (services/console/escalations.py); the broker is named by CARELINK_KAFKA_*. Off:
    # the overdue view (/overdue) still works, without live pushes.
    follow_escalations: bool = False
    # Prefixes the console's consumer group, as CARELINK_GROUP_PREFIX does the services'.
    group_prefix: str = Field(default="", validation_alias=_both("GROUP_PREFIX"))

    registry_file: Path | None = Field(default=None, validation_alias=_both("REGISTRY_FILE"))
    # The visit findings vocabulary the visit form offers (deploy/config/findings.yaml).
    findings_file: Path | None = Field(default=None, validation_alias=_both("FINDINGS_FILE"))
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto", validation_alias=_both("LOG_FORMAT")
    )
    log_level: str = Field(default="INFO", validation_alias=_both("LOG_LEVEL"))
    log_file: Path | None = Field(default=None, validation_alias=_both("LOG_FILE"))
