"""Composition root of the scheduling service."""

from __future__ import annotations

from pathlib import Path

from contracts.topics import CASES
from services.runtime.pipeline import Handler
from services.runtime.service import ServiceContext, ServiceSpec
from services.scheduling.usecases import CaseEvents
from services.tasks import MIGRATIONS as TASKS_MIGRATIONS
from services.tasks.deadlines import deadline_watcher


def _handler(context: ServiceContext) -> Handler:
    return CaseEvents(horizon_days=context.settings.postponement_horizon_days).handler()


SPEC = ServiceSpec(
    name="scheduling",
    migrations=Path(__file__).with_name("migrations"),
    extra_migrations=(("tasks", TASKS_MIGRATIONS),),
    topics=lambda _registry: [CASES],
    handler=_handler,
    extra_tasks=(deadline_watcher("scheduling"),),
)
