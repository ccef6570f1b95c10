"""Composition root of the scheduling service."""

from __future__ import annotations

from pathlib import Path

from contracts.topics import CASES
from services.runtime.pipeline import Handler
from services.runtime.service import ServiceContext, ServiceSpec
from services.scheduling.usecases import Scheduling


def _handler(context: ServiceContext) -> Handler:
    return Scheduling(auto_complete=context.settings.auto_complete_tasks).handler()


SPEC = ServiceSpec(
    name="scheduling",
    migrations=Path(__file__).with_name("migrations"),
    topics=lambda _registry: [CASES],
    handler=_handler,
)
