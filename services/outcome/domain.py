"""Pure translation of case events into the hospital's status updates.

The table of what each internal event means to a hospital lives here and only
here; the hospital contract lists the statuses and reason codes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from contracts.cases import CaseEvent
from contracts.hospital_v1 import Status
from contracts.intake import CaseAccepted, CaseCancelled, CaseReceived, CaseRejected
from contracts.outcome import CaseClosed
from contracts.referral import CarePlanSet, ServicesLinked
from contracts.scheduling import VisitDone, VisitScheduled


@dataclass(frozen=True)
class Update:
    status: Status
    business_status: str
    reason_code: str | None = None
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def translate(event: CaseEvent) -> Update | None:
    """The hospital's view of one case event; None when the hospital need not hear of it."""
    match event:
        case CaseReceived():
            return Update(Status.RECEIVED, "received")
        case CaseAccepted():
            return Update(
                Status.ACCEPTED,
                "triaged",
                details={
                    "fee_support": event.fee_support,
                    "centre_id": event.centre_id,
                    "review_deadline": event.review_deadline.isoformat(),
                },
            )
        case CaseRejected():
            return Update(
                Status.REJECTED,
                event.reason_code,
                reason_code=event.reason_code,
                reason=event.reason,
                details={"errors": [e.model_dump() for e in event.errors]} if event.errors else {},
            )
        case VisitScheduled():
            return Update(
                Status.IN_PROGRESS,
                f"{event.kind}-visit-scheduled",
                details={
                    "visit_window": {
                        "start": event.window_start.isoformat(),
                        "end": event.window_end.isoformat(),
                    }
                },
            )
        case VisitDone():
            return Update(
                Status.IN_PROGRESS,
                f"{event.kind}-visit-done",
                details={"care_precautions_acknowledged": event.precautions_acknowledged},
            )
        case CarePlanSet():
            return Update(
                Status.IN_PROGRESS,
                "care-plan-set",
                details={"care_plan": plan_summary(event)},
            )
        case ServicesLinked():
            return Update(Status.IN_PROGRESS, "services-linked")
        case CaseCancelled():
            return Update(
                Status.CANCELLED,
                event.reason_code.value,
                reason_code=event.reason_code.value,
                reason="the hospital withdrew the referral",
            )
        case CaseClosed():
            return Update(
                Status.COMPLETED, "closed", details={"outcome_report": outcome_report(event)}
            )
    return None


def plan_summary(plan: CarePlanSet) -> dict[str, Any]:
    return {
        "services": [line.model_dump(mode="json") for line in plan.lines],
        "total_krw": plan.total_krw,
        "publicly_paid_krw": plan.publicly_paid_krw,
        "self_paid_krw": plan.self_paid_krw,
        "paid_by": plan.paid_by,
        "partial": plan.partial,
    }


def outcome_report(closed: CaseClosed) -> dict[str, Any]:
    return {
        "services_delivered": [line.model_dump(mode="json") for line in closed.delivered],
        "total_krw": closed.total_krw,
        "publicly_paid_krw": closed.publicly_paid_krw,
        "self_paid_krw": closed.self_paid_krw,
        "care_precautions_acknowledged": True,
        "follow_up_advice": "Contact the district Care SOS centre if needs change.",
    }
