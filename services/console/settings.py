"""The console's settings: environment variables prefixed `CARELINK_CONSOLE_`.

A few are shared with the services and fall back to their plain `CARELINK_`
names (logging, the policy and registry files, the contact-attempt limit that
scheduling's own setting must agree with).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.lib.runtime.settings import REPO_ROOT

DEFAULT_PORT = 8180


def _local_db(name: str) -> str:
    return f"postgresql://postgres@127.0.0.1:5432/carelink_{name}"


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
    intake_database_url: str = _local_db("intake")
    referral_database_url: str = _local_db("referral")
    scheduling_database_url: str = _local_db("scheduling")
    # How long a claim holds a task before someone else may take it over.
    lease_minutes: int = Field(default=30, ge=1, le=24 * 60)
    session_hours: float = Field(default=8.0, gt=0, le=24)
    # Set behind TLS: browsers then send the session cookie over HTTPS only.
    cookie_secure: bool = False
    # How often the queue's live refresh looks for changes in the two task databases.
    events_poll_interval_s: float = Field(default=2.0, gt=0)
    events_keepalive_s: float = Field(default=15.0, gt=0)
    db_pool_max: int = Field(default=5, ge=1)
    connect_timeout_s: float = Field(default=60.0, gt=0)

    # Must equal scheduling's CARELINK_MAX_CONTACT_ATTEMPTS: the use case takes it
    # from its caller, so the console reads the same variable by default.
    max_contact_attempts: int = Field(
        default=3, ge=1, validation_alias=_both("MAX_CONTACT_ATTEMPTS")
    )
    policy_dir: Path | None = Field(default=None, validation_alias=_both("POLICY_DIR"))
    registry_file: Path | None = Field(default=None, validation_alias=_both("REGISTRY_FILE"))
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto", validation_alias=_both("LOG_FORMAT")
    )
    log_level: str = Field(default="INFO", validation_alias=_both("LOG_LEVEL"))
    log_file: Path | None = Field(default=None, validation_alias=_both("LOG_FILE"))
