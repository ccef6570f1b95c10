"""Events the outcome service appends to `care.cases`."""

from __future__ import annotations

from contracts.cases import CaseEvent, register
from contracts.referral import DeliveredLine


@register
class CaseClosed(CaseEvent):
    """Every line of the plan ended with something delivered, and the post-discharge
    visit done: the loop is closed. `delivered` is each line as delivered (lines closed
    before delivery was recorded carry the plan's fields only)."""

    ce_type = "carelink.case.closed.v1"
    producer = "outcome"

    delivered: list[DeliveredLine]
    total_krw: int
    publicly_paid_krw: int
    self_paid_krw: int
    annual_cap_krw: int
    cap_remaining_krw: int
    precautions_acknowledged: bool


@register
class CaseLinkDeclined(CaseEvent):
    """A referral joined a case that had already closed (intake learns of closures a
    moment after hospitals do): intake gives the referral a case of its own.
    hospital_id/referral_id name that referral."""

    ce_type = "carelink.case.link-declined.v1"
    producer = "outcome"
