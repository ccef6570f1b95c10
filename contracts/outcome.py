"""Events the outcome service appends to `care.cases`."""

from __future__ import annotations

from contracts.cases import CaseEvent, register
from contracts.referral import PlanLine


@register
class CaseClosed(CaseEvent):
    """Services delivered and the post-discharge visit done: the loop is closed."""

    ce_type = "carelink.case.closed.v1"
    producer = "outcome"

    delivered: list[PlanLine]
    total_krw: int
    publicly_paid_krw: int
    self_paid_krw: int
    annual_cap_krw: int
    cap_remaining_krw: int
    precautions_acknowledged: bool
