"""Composition root of the intake service."""

from __future__ import annotations

from pathlib import Path

from contracts.topics import CASES, referrals
from services.intake.usecases import Intake
from services.policy import Registry, load_policies
from services.runtime.logging import get_logger
from services.runtime.pipeline import Handler
from services.runtime.service import ServiceContext, ServiceSpec

log = get_logger(__name__)


def _topics(registry: Registry) -> list[str]:
    # care.cases too: intake learns there when a case closes.
    return [*(referrals(h) for h in sorted(registry.hospital_ids)), CASES]


def _handler(context: ServiceContext) -> Handler:
    # A malformed policy file raises here, at start, with the file and field named.
    policies = load_policies(context.settings.config_dir / "policy")
    for gap in policies.report():
        log.warning("policy gap", detail=gap)
    return Intake(policies=policies, registry=context.registry).handle


SPEC = ServiceSpec(
    name="intake",
    migrations=Path(__file__).with_name("migrations"),
    topics=_topics,
    handler=_handler,
)
