"""Pure translation of case events into the steps hospitals hear of.

The table of what each internal event means to a hospital lives here and only
here; which step may follow which is the FHIR Task state machine
(`contracts.fhir_task`), applied in `status_machine`. The reason texts, English and
Korean, come from the contract's table (`contracts.reasons`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from contracts.cases import CaseEvent
from contracts.hospital_v1 import Status
from contracts.intake import CaseAccepted, CaseCancelled, CaseReceived, CaseRejected
from contracts.outcome import CaseClosed
from contracts.reasons import REASONS
from contracts.referral import (
    CarePlanSet,
    CaseFailed,
    CaseWaitlisted,
    ReviewCompleted,
    ServicesDelivered,
    ServicesLinked,
    ServicesOrdered,
    ServicesStarted,
)
from contracts.scheduling import CaseOnHold, CaseResumed, VisitDone, VisitScheduled
from services.lib.policy import Findings

# The business status of a refused record: the referral's status is repeated with it.
SUBMISSION_REFUSED = "submission-refused"
# The business status of a hold's end: back to the status the hold left.
RESUMED = "resumed"


@dataclass(frozen=True)
class Update:
    """One update's content as a hospital receives it (without its sequence)."""

    status: Status
    business_status: str
    reason_code: str | None = None
    reason: str | None = None
    reason_ko: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "business_status": self.business_status,
            "reason_code": self.reason_code,
            "reason": self.reason,
            "reason_ko": self.reason_ko,
            "details": self.details,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Update:
        return cls(
            Status(data["status"]),
            data["business_status"],
            data.get("reason_code"),
            data.get("reason"),
            data.get("reason_ko"),
            dict(data.get("details") or {}),
        )


@dataclass(frozen=True)
class Resume:
    """A hold ended: back to the status the hold left, whatever it was (the state
    machine knows it, the event does not)."""

    details: dict[str, Any] = field(default_factory=dict)


Step = Update | Resume


def reason_texts(code: str, reason: str | None = None) -> tuple[str, str]:
    """(reason, reason_ko) for a reason code: the contract's table, with a more precise
    English `reason` when the event has one. A code outside the table (a producer newer
    than this table) still gets both texts."""
    row = REASONS.get(code)
    if row is None:
        return reason or code, f"사유 코드: {code}"
    return reason or row.en, row.ko


def with_reason(
    status: Status,
    business_status: str,
    code: str,
    *,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> Update:
    en, ko = reason_texts(code, reason)
    return Update(status, business_status, code, en, ko, details or {})


def visit_findings(codes: Sequence[str], vocabulary: Findings | None) -> list[dict[str, Any]]:
    """A visit's findings as the hospital receives them: each code of the vocabulary with
    its Korean and English labels, in the order recorded. Anything the vocabulary lacks
    is left out (the use case counts and logs it, without the value). Without a
    vocabulary (a caller that has none), the codes alone."""
    if vocabulary is None:
        return [{"code": code} for code in dict.fromkeys(codes)]
    return [finding.summary() for finding in vocabulary.known(codes)]


def translate(event: CaseEvent, findings: Findings | None = None) -> Step | None:
    """The hospital's view of one case event; None when the hospital need not hear of it.
    `findings`: the visit findings vocabulary, for their labels.

    Records refused under an existing referral (`CaseSubmissionRefused`), repeats and
    joins depend on where a referral stands: `status_machine` answers those."""
    match event:
        case CaseReceived():
            return Update(Status.RECEIVED, "received")
        case CaseAccepted():
            # The automatic triage is a step of `received` (revision 2): only a person's
            # review makes the case `accepted`.
            return Update(
                Status.RECEIVED,
                "triaged",
                details={
                    "fee_support": event.fee_support,
                    "centre_id": event.centre_id,
                    "review_deadline": event.review_deadline.isoformat(),
                },
            )
        case ReviewCompleted(decision="eligible"):
            return Update(Status.ACCEPTED, "reviewed")
        case ReviewCompleted():
            code: str = event.reason_code or "ineligible"
            # A patient who declines is cancelled (never rejected: the patient, not the
            # programme, said no); the review's other refusals reject the referral.
            status = Status.CANCELLED if code == "declined-by-patient" else Status.REJECTED
            return with_reason(status, code, code)
        case CaseRejected():
            return with_reason(
                Status.REJECTED,
                event.reason_code,
                event.reason_code,
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
                    "findings": visit_findings(event.findings, findings),
                },
            )
        case CaseOnHold():
            return with_reason(Status.ON_HOLD, event.reason_code, event.reason_code)
        case CaseResumed():
            return Resume(details={"visit": event.kind})
        case CaseWaitlisted():
            return with_reason(
                Status.ON_HOLD,
                "waitlisted",
                "waitlisted",
                details={"retry_at": event.retry_at.isoformat()},
            )
        case CaseFailed():
            details: dict[str, Any] = {}
            if event.annual_cap_krw is not None:
                details = {
                    "annual_cap_krw": event.annual_cap_krw,
                    "cap_remaining_krw": event.cap_remaining_krw,
                }
            if event.delivered:
                # Ordered, and nothing delivered: each line with why it ended.
                details["services"] = [line.model_dump(mode="json") for line in event.delivered]
            return with_reason(Status.FAILED, event.reason_code, event.reason_code, details=details)
        case CarePlanSet():
            return Update(
                Status.IN_PROGRESS,
                "care-plan-set",
                details={"care_plan": plan_summary(event)},
            )
        case ServicesOrdered():
            return Update(
                Status.IN_PROGRESS,
                "services-ordered",
                details={"services": [line.model_dump(mode="json") for line in event.lines]},
            )
        case ServicesLinked():
            # From a referral deployed before providers were named: ordered, no details.
            return Update(Status.IN_PROGRESS, "services-ordered")
        case ServicesStarted():
            return Update(
                Status.IN_PROGRESS,
                "services-started",
                details={
                    "first_service": {
                        "line": event.line,
                        "service": event.service.value,
                        "provider": event.provider.model_dump(mode="json"),
                        "started_on": event.started_on.isoformat(),
                    }
                },
            )
        case ServicesDelivered():
            return Update(
                Status.IN_PROGRESS,
                "services-delivered",
                details={"delivery": delivery_summary(event)},
            )
        case CaseCancelled():
            return with_reason(Status.CANCELLED, event.reason_code.value, event.reason_code.value)
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


def delivery_summary(delivered: ServicesDelivered) -> dict[str, Any]:
    return {
        "services": [line.model_dump(mode="json") for line in delivered.lines],
        "total_krw": delivered.total_krw,
        "publicly_paid_krw": delivered.publicly_paid_krw,
        "self_paid_krw": delivered.self_paid_krw,
        "paid_by": _payer(delivered.publicly_paid_krw, delivered.self_paid_krw),
        "annual_cap_krw": delivered.annual_cap_krw,
        "cap_remaining_krw": delivered.cap_remaining_krw,
    }


def outcome_report(closed: CaseClosed) -> dict[str, Any]:
    """The report `completed`/`closed` carries: each service as delivered (provider,
    dates, units ordered and delivered, how it ended, cost, district-paid, self-paid),
    the totals, the care precautions acknowledged, follow-up advice."""
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
    "The services ordered for this plan have ended. If needs change, the hospital or the "
    "patient can contact the district Care SOS centre again; a new referral within the year "
    "counts against the same annual cap, which holds what the district paid for what was "
    "delivered."
)


def _payer(public: int, private: int) -> str:
    if private == 0:
        return "district"
    return "resident" if public == 0 else "shared"
