"""Events the referral service (review, care plan, services ordered and delivered)
appends to `care.cases`."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict

from contracts.cases import CaseEvent, register
from contracts.hospital_v1 import ServiceCode
from contracts.intake import FeeSupport


class PlanLine(BaseModel):
    # Tolerant reader, like every internal event (see CaseEvent).
    model_config = ConfigDict(frozen=True, extra="ignore")

    service: ServiceCode
    quantity: int
    unit: str
    cost_krw: int


class ProviderName(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    ko: str
    en: str


class ProviderRef(BaseModel):
    """A contracted provider (an organisation, not a person: its name may travel)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    name: ProviderName


# Why a line of a care plan ended before everything ordered was delivered.
LineEndReason = Literal["moved-to-facility", "refused", "deceased", "provider-could-not-staff"]
LINE_END_REASONS: tuple[LineEndReason, ...] = (
    "moved-to-facility",
    "refused",
    "deceased",
    "provider-could-not-staff",
)
# How a line ended: everything ordered delivered, some of it, or none.
LineOutcome = Literal["delivered", "partly-delivered", "not-delivered"]


class OrderedLine(PlanLine):
    """A plan line as ordered from its provider (`cost_krw`: the planned cost)."""

    line: int
    provider: ProviderRef
    planned_start: date


class DeliveredLine(PlanLine):
    """A plan line as it ended: `quantity` is what was ordered, `delivered_units` what
    was delivered, `cost_krw` the cost of what was delivered at the policy year's unit
    price, split into the district-paid and self-paid parts. The fields beyond PlanLine
    have defaults, so a reader accepts lines written before they existed."""

    line: int = 0
    provider: ProviderRef | None = None
    planned_start: date | None = None
    started_on: date | None = None
    ended_on: date | None = None
    delivered_units: int = 0
    outcome: LineOutcome = "delivered"
    end_reason: LineEndReason | None = None
    district_paid_krw: int = 0
    self_paid_krw: int = 0


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
    # When services were ordered but nothing was delivered: each line as it ended.
    delivered: list[DeliveredLine] = []


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
    """The planned services were handed to providers (before providers were named).

    No longer emitted: `ServicesOrdered` replaced it. Kept readable for events written
    by an earlier referral."""

    ce_type = "carelink.case.services-linked.v1"
    producer = "referral"


@register
class ServicesOrdered(CaseEvent):
    """Each line of the care plan was ordered from a contracted provider, to start on
    its planned date (written with the plan, in the same transaction)."""

    ce_type = "carelink.case.services-ordered.v1"
    producer = "referral"

    lines: list[OrderedLine]


@register
class ServicesStarted(CaseEvent):
    """The first line of the plan started (later lines starting are not announced)."""

    ce_type = "carelink.case.services-started.v1"
    producer = "referral"

    line: int
    service: ServiceCode
    provider: ProviderRef
    started_on: date


@register
class ServicesDelivered(CaseEvent):
    """Every line of the plan ended and something was delivered: the delivery report.
    The annual cap counts what the district paid for what was delivered."""

    ce_type = "carelink.case.services-delivered.v1"
    producer = "referral"

    lines: list[DeliveredLine]
    total_krw: int
    publicly_paid_krw: int
    self_paid_krw: int
    annual_cap_krw: int
    cap_remaining_krw: int


@register
class FeeSupportCorrected(CaseEvent):
    """A coordinator corrected the case's fee support before its care plan (the triage
    read the income wrongly, a household changed): the plan is priced on the corrected
    value. The coordinator's note stays in referral's store (issue 10)."""

    ce_type = "carelink.case.fee-support-corrected.v1"
    producer = "referral"

    fee_support: FeeSupport
    previous: FeeSupport
