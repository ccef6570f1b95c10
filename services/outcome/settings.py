"""The outcome service's settings (`CARELINK_*` variables; see services.lib.runtime.settings)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from services.lib.runtime.callers import CallerSettings
from services.lib.runtime.settings import ServiceSettings

DEFAULT_PORT = 8184


class OutcomeSettings(ServiceSettings, CallerSettings):
    service: Literal["outcome"] = "outcome"
    health_port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    # The visit findings vocabulary (deploy/config/findings.yaml); None = the repository's.
    findings_file: Path | None = None
