"""Events the referral service (review and care plan) appends to `care.cases`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from contracts.cases import CaseEvent, register
from contracts.hospital_v1 import ServiceCode


class PlanLine(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    service: ServiceCode
    quantity: int
    unit: str
    cost_krw: int


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


@register
class ServicesLinked(CaseEvent):
    """The planned services were handed to providers; delivery is under way."""

    ce_type = "carelink.case.services-linked.v1"
    producer = "referral"
