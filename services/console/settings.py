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
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    # Signs session tokens. Unset: a random key per process (logged as a warning), so
    # sessions end when the console restarts and two instances do not share them.
    secret_key: SecretStr | None = None
    users_file: Path = REPO_ROOT / "deploy" / "config" / "users.yaml"
    session_hours: float = Field(default=8.0, gt=0, le=24)
    # Set behind TLS: browsers then send the session cookie over HTTPS only.
    cookie_secure: bool = False

    # The services' HTTP APIs (each on its own port; the local defaults of `make run`).
    intake_url: str = "http://127.0.0.1:8181"
    referral_url: str = "http://127.0.0.1:8182"
    scheduling_url: str = "http://127.0.0.1:8183"
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

    registry_file: Path | None = Field(default=None, validation_alias=_both("REGISTRY_FILE"))
    # The visit findings vocabulary the visit form offers (deploy/config/findings.yaml).
    findings_file: Path | None = Field(default=None, validation_alias=_both("FINDINGS_FILE"))
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto", validation_alias=_both("LOG_FORMAT")
    )
    log_level: str = Field(default="INFO", validation_alias=_both("LOG_LEVEL"))
    log_file: Path | None = Field(default=None, validation_alias=_both("LOG_FILE"))
