"""Composition root of the referral service."""

from __future__ import annotations

from pathlib import Path

from contracts.topics import CASES
from services.lib.runtime.pipeline import Handler
from services.lib.runtime.service import ServiceContext, ServiceSpec
from services.lib.tasks import MIGRATIONS as TASKS_MIGRATIONS
from services.lib.tasks.deadlines import deadline_watcher
from services.referral import api
from services.referral.settings import ReferralSettings
from services.referral.usecases import CaseEvents


def _handler(context: ServiceContext[ReferralSettings]) -> Handler:
    return CaseEvents(context.policies).handler()


SPEC: ServiceSpec[ReferralSettings] = ServiceSpec(
    name="referral",
    settings=ReferralSettings,
    policy_dir=lambda settings: settings.policy_dir,
    providers_file=lambda settings: settings.providers_file,
    migrations=Path(__file__).with_name("migrations"),
    extra_migrations=(("tasks", TASKS_MIGRATIONS),),
    topics=lambda _registry: [CASES],
    handler=_handler,
    # The HTTP API of what the service owns, on its health port (api.py).
    routes=api.routes,
    extra_tasks=(deadline_watcher,),
)
