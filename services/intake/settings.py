"""The intake service's settings (`CARELINK_*` variables; see services.lib.runtime.settings)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from services.lib.policy.settings import PolicySettings
from services.lib.runtime.callers import CallerSettings
from services.lib.runtime.settings import ServiceSettings

DEFAULT_PORT = 8181


class IntakeSettings(ServiceSettings, PolicySettings, CallerSettings):
    service: Literal["intake"] = "intake"
    health_port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
