"""Composition root of the scheduling service."""

from __future__ import annotations

from pathlib import Path

from contracts.topics import CASES
from services.lib.runtime.pipeline import Handler
from services.lib.runtime.service import ServiceContext, ServiceSpec
from services.lib.tasks import MIGRATIONS as TASKS_MIGRATIONS
from services.lib.tasks.deadlines import deadline_watcher
from services.scheduling import api
from services.scheduling.settings import SchedulingSettings
from services.scheduling.usecases import CaseEvents


def _handler(context: ServiceContext[SchedulingSettings]) -> Handler:
    return CaseEvents(
        horizon_days=context.settings.postponement_horizon_days, policies=context.policies
    ).handler()


SPEC: ServiceSpec[SchedulingSettings] = ServiceSpec(
    name="scheduling",
    settings=SchedulingSettings,
    findings_file=lambda settings: settings.findings_file,
    # The yearly policies' deadline rules date the visits (issue 10).
    policy_dir=lambda settings: settings.policy_dir,
    migrations=Path(__file__).with_name("migrations"),
    extra_migrations=(("tasks", TASKS_MIGRATIONS),),
    topics=lambda _registry: [CASES],
    handler=_handler,
    # The HTTP API of what the service owns, on its health port (api.py).
    routes=api.routes,
    extra_tasks=(deadline_watcher,),
)
