"""The referral service's settings (`CARELINK_*` variables; see services.lib.runtime.settings)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from services.lib.policy.settings import PolicySettings
from services.lib.runtime.callers import CallerSettings
from services.lib.tasks.settings import TaskSettings

DEFAULT_PORT = 8182


class ReferralSettings(TaskSettings, PolicySettings, CallerSettings):
    service: Literal["referral"] = "referral"
    health_port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
