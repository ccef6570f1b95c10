"""Events the scheduling service (visits) appends to `care.cases`."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime

from contracts.cases import CaseEvent, register

VisitKind = Literal["pre-discharge", "post-discharge"]


@register
class VisitScheduled(CaseEvent):
    ce_type = "carelink.case.visit-scheduled.v1"
    producer = "scheduling"

    kind: VisitKind
    window_start: AwareDatetime
    window_end: AwareDatetime


@register
class VisitDone(CaseEvent):
    ce_type = "carelink.case.visit-done.v1"
    producer = "scheduling"

    kind: VisitKind
    precautions_acknowledged: bool
