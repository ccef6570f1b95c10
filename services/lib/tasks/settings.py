"""Settings of a service that owns coordinator tasks (referral, scheduling)."""

from __future__ import annotations

from pydantic import Field

from services.lib.runtime.settings import ServiceSettings


class TaskSettings(ServiceSettings):
    # How often overdue coordinator tasks are looked for (each is escalated once).
    deadline_scan_interval_s: float = Field(default=30.0, gt=0)
    # How long a claim holds a task before someone else may take it over.
    lease_minutes: int = Field(default=30, ge=1, le=24 * 60)
