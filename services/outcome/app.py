"""Composition root of the outcome service."""

from __future__ import annotations

from pathlib import Path

from contracts.topics import CASES
from services.lib.runtime.service import ServiceSpec
from services.outcome import api
from services.outcome.settings import OutcomeSettings
from services.outcome.usecases import Outcome

SPEC: ServiceSpec[OutcomeSettings] = ServiceSpec(
    name="outcome",
    settings=OutcomeSettings,
    findings_file=lambda settings: settings.findings_file,
    migrations=Path(__file__).with_name("migrations"),
    topics=lambda _registry: [CASES],
    # The instance, not its bound method: the pipeline looks for its set path (handle_many).
    handler=lambda context: Outcome(context.findings),
    # What the hospitals were told, for the console's case page (issue 10).
    routes=api.routes,
)
