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
    # "missed": the patient left hospital before the pre-discharge visit could happen.
    outcome: Literal["done", "missed"] = "done"
    precautions_acknowledged: bool
    # Coded findings only; a coordinator's free-text notes stay in scheduling's store.
    findings: list[str] = []


@register
class CaseOnHold(CaseEvent):
    """Visits are suspended until the reason clears."""

    ce_type = "carelink.case.on-hold.v1"
    producer = "scheduling"

    reason_code: Literal["discharge-postponed", "readmitted", "unreachable"]


@register
class CaseResumed(CaseEvent):
    """The reason for the hold cleared; the suspended visit is planned again."""

    ce_type = "carelink.case.resumed.v1"
    producer = "scheduling"

    kind: VisitKind
