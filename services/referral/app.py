"""Composition root of the referral service."""

from __future__ import annotations

from pathlib import Path

from contracts.topics import CASES
from services.referral.usecases import CaseEvents
from services.runtime.pipeline import Handler
from services.runtime.service import ServiceContext, ServiceSpec
from services.tasks import MIGRATIONS as TASKS_MIGRATIONS
from services.tasks.deadlines import deadline_watcher


def _handler(context: ServiceContext) -> Handler:
    return CaseEvents().handler()


SPEC = ServiceSpec(
    name="referral",
    migrations=Path(__file__).with_name("migrations"),
    extra_migrations=(("tasks", TASKS_MIGRATIONS),),
    topics=lambda _registry: [CASES],
    handler=_handler,
    extra_tasks=(deadline_watcher("referral"),),
)
