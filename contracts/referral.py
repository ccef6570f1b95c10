"""Events the referral service (review and care plan) appends to `care.cases`."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict

from contracts.cases import CaseEvent, register
from contracts.hospital_v1 import ServiceCode


class PlanLine(BaseModel):
    # Tolerant reader, like every internal event (see CaseEvent).
    model_config = ConfigDict(frozen=True, extra="ignore")

    service: ServiceCode
    quantity: int
    unit: str
    cost_krw: int


# Why a coordinator found a referral ineligible on the human criteria (domain.md).
ReviewRefusal = Literal[
    "can-manage-alone",
    "family-caregiver-available",
    "covered-by-public-care",
    "declined-by-patient",
]


@register
class ReviewCompleted(CaseEvent):
    """A coordinator reviewed the referral: eligible, or not with a coded reason."""

    ce_type = "carelink.case.review-completed.v1"
    producer = "referral"

    decision: Literal["eligible", "ineligible"]
    reason_code: ReviewRefusal | None = None


@register
class CaseWaitlisted(CaseEvent):
    """No provider can take the plan now; the care-plan task comes back later."""

    ce_type = "carelink.case.waitlisted.v1"
    producer = "referral"

    retry_at: AwareDatetime


@register
class CaseFailed(CaseEvent):
    ce_type = "carelink.case.failed.v1"
    producer = "referral"

    reason_code: Literal["could-not-deliver", "cap-exhausted"]
    annual_cap_krw: int | None = None
    cap_remaining_krw: int | None = None


@register
class CarePlanSet(CaseEvent):
    ce_type = "carelink.case.care-plan-set.v1"
    producer = "referral"

    lines: list[PlanLine]
    total_krw: int
    publicly_paid_krw: int
    self_paid_krw: int
    partial: bool
    paid_by: Literal["district", "resident", "shared"]
    annual_cap_krw: int
    cap_remaining_krw: int


@register
class ServicesLinked(CaseEvent):
    """The planned services were handed to providers; delivery is under way."""

    ce_type = "carelink.case.services-linked.v1"
    producer = "referral"
