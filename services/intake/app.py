"""Composition root of the intake service."""

from __future__ import annotations

from pathlib import Path

from contracts.topics import CASES, referrals
from services.intake import api, destruction
from services.intake.settings import IntakeSettings
from services.intake.submissions import BatchedIntake
from services.intake.usecases import reject_oversized
from services.lib.policy import Registry
from services.lib.runtime.pipeline import Handler
from services.lib.runtime.service import ServiceContext, ServiceSpec


def _topics(registry: Registry) -> list[str]:
    # care.cases too: intake learns there when a case closes.
    return [*(referrals(h) for h in sorted(registry.hospital_ids)), CASES]


def _handler(context: ServiceContext[IntakeSettings]) -> Handler:
    # Whole batches take the set-based path (submissions.py); single records the usual one.
    return BatchedIntake(policies=context.policies, registry=context.registry)


SPEC: ServiceSpec[IntakeSettings] = ServiceSpec(
    name="intake",
    settings=IntakeSettings,
    policy_dir=lambda settings: settings.policy_dir,
    migrations=Path(__file__).with_name("migrations"),
    topics=_topics,
    handler=_handler,
    # The HTTP API of what the service owns, on its health port (api.py).
    routes=api.routes,
    oversize=reject_oversized,
    # PIPA: destroys the personal data of closed cases whose retention period ended.
    extra_tasks=(destruction.run_schedule,),
)
