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
from contracts.referral import (
    CarePlanSet,
    CaseFailed,
    CaseWaitlisted,
    ReviewCompleted,
    ServicesLinked,
)
from contracts.scheduling import CaseOnHold, VisitDone, VisitScheduled

# After these the case does not change any more; only repeats are sent.
FINAL = frozenset({Status.COMPLETED, Status.CANCELLED, Status.FAILED, Status.REJECTED})

REVIEW_REASONS = {
    "can-manage-alone": "the review found the patient can manage daily life alone",
    "family-caregiver-available": "the review found a family caregiver is available",
    "covered-by-public-care": "the patient is already covered by an equivalent public care service",
    "declined-by-patient": "the patient declined the service",
}
HOLD_REASONS = {
    "discharge-postponed": "the expected discharge moved beyond the planning horizon",
    "readmitted": "the patient was readmitted; the post-discharge visit waits for the new discharge",
    "unreachable": "the patient could not be reached after repeated attempts",
    "waitlisted": "no provider can take the care plan now; it will be planned again",
}
FAIL_REASONS = {
    "cap-exhausted": "the person's annual cap of publicly paid services is used up",
    "could-not-deliver": "the planned services could not be delivered",
}


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
                details={
                    "visit_outcome": event.outcome,
                    "care_precautions_acknowledged": event.precautions_acknowledged,
                    "findings": list(event.findings),
                },
            )
        case ReviewCompleted(decision="ineligible"):
            code = event.reason_code or "ineligible"
            status = Status.CANCELLED if code == "declined-by-patient" else Status.REJECTED
            return Update(status, code, reason_code=code, reason=REVIEW_REASONS.get(code, code))
        case CaseOnHold():
            return Update(
                Status.ON_HOLD,
                event.reason_code,
                reason_code=event.reason_code,
                reason=HOLD_REASONS[event.reason_code],
            )
        case CaseWaitlisted():
            return Update(
                Status.ON_HOLD,
                "waitlisted",
                reason_code="waitlisted",
                reason=HOLD_REASONS["waitlisted"],
                details={"retry_at": event.retry_at.isoformat()},
            )
        case CaseFailed():
            details = {}
            if event.annual_cap_krw is not None:
                details = {
                    "annual_cap_krw": event.annual_cap_krw,
                    "cap_remaining_krw": event.cap_remaining_krw,
                }
            return Update(
                Status.FAILED,
                event.reason_code,
                reason_code=event.reason_code,
                reason=FAIL_REASONS[event.reason_code],
                details=details,
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
        "annual_cap_krw": plan.annual_cap_krw,
        "cap_remaining_krw": plan.cap_remaining_krw,
    }


def outcome_report(closed: CaseClosed) -> dict[str, Any]:
    return {
        "services_delivered": [line.model_dump(mode="json") for line in closed.delivered],
        "total_krw": closed.total_krw,
        "publicly_paid_krw": closed.publicly_paid_krw,
        "self_paid_krw": closed.self_paid_krw,
        "paid_by": _payer(closed.publicly_paid_krw, closed.self_paid_krw),
        "annual_cap_krw": closed.annual_cap_krw,
        "cap_remaining_krw": closed.cap_remaining_krw,
        "care_precautions_acknowledged": closed.precautions_acknowledged,
        "follow_up_advice": FOLLOW_UP_ADVICE,
    }


FOLLOW_UP_ADVICE = (
    "Services end with this plan. If needs change, the hospital or the patient can contact "
    "the district Care SOS centre again; a new referral within the year counts against the "
    "same annual cap."
)


def _payer(public: int, private: int) -> str:
    if private == 0:
        return "district"
    return "resident" if public == 0 else "shared"
