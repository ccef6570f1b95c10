"""The referral service's settings (`CARELINK_*` variables; see services.lib.runtime.settings)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from services.lib.policy.settings import PolicySettings
from services.lib.runtime.callers import CallerSettings
from services.lib.tasks.settings import TaskSettings

DEFAULT_PORT = 8182


class ReferralSettings(TaskSettings, PolicySettings, CallerSettings):
    service: Literal["referral"] = "referral"
    health_port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    # The contracted providers (deploy/config/providers.yaml); None = the repository's.
    providers_file: Path | None = None
    # Providers that report delivery themselves (/v1/provider/…): provider id -> its
    # secret token (CARELINK_PROVIDER_CALLERS, JSON). Empty: no provider can call.
    provider_callers: dict[str, SecretStr] = Field(default_factory=dict)
