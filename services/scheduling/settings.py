"""The scheduling service's settings (`CARELINK_*` variables; see services.lib.runtime.settings)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from services.lib.policy.settings import PolicySettings
from services.lib.runtime.callers import CallerSettings
from services.lib.tasks.settings import TaskSettings

DEFAULT_PORT = 8183


class SchedulingSettings(TaskSettings, PolicySettings, CallerSettings):
    service: Literal["scheduling"] = "scheduling"
    health_port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    # Failed contact attempts before a visit puts the case on hold as `unreachable`.
    max_contact_attempts: int = Field(default=3, ge=1)
    # A new expected discharge date further out than this puts the case on hold.
    postponement_horizon_days: int = Field(default=14, ge=1)
    # The visit findings vocabulary (deploy/config/findings.yaml); None = the repository's.
    findings_file: Path | None = None
