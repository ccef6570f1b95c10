"""Composition root of the referral service."""

from __future__ import annotations

from pathlib import Path

from contracts.topics import CASES
from services.policy import load_policies
from services.referral.usecases import Referral
from services.runtime.pipeline import Handler
from services.runtime.service import ServiceContext, ServiceSpec


def _handler(context: ServiceContext) -> Handler:
    policies = load_policies(context.settings.config_dir / "policy")
    return Referral(policies=policies, auto_complete=context.settings.auto_complete_tasks).handler()


SPEC = ServiceSpec(
    name="referral",
    migrations=Path(__file__).with_name("migrations"),
    topics=lambda _registry: [CASES],
    handler=_handler,
)
