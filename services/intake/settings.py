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
    # PIPA destruction (services.intake.destruction): how often the job looks for closed
    # cases whose retention period ended, and how many it destroys per run at most.
    personal_data_destruction_interval_s: float = Field(default=3600.0, gt=0)
    personal_data_destruction_batch: int = Field(default=200, ge=1, le=10_000)
