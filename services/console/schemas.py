"""What the console's API takes and returns (and the pages' forms are turned into)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.hospital_v1 import ServiceCode
from contracts.referral import LineEndReason, ReviewRefusal
from contracts.scheduling import FindingCode

Service = Literal["referral", "scheduling"]
Kind = Literal["review", "care-plan", "pre-discharge-visit", "post-discharge-visit", "delivery"]
Status = Literal["open", "claimed", "done", "cancelled", "suspended"]
SERVICE_OF: dict[str, Service] = {
    "review": "referral",
    "care-plan": "referral",
    "pre-discharge-visit": "scheduling",
    "post-discharge-visit": "scheduling",
    "delivery": "referral",
}


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class _In(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ErrorOut(_Out):
    error: str = Field(description="a stable code: unauthorized, not-found, claimed-by-other, …")
    message: str


class LoginIn(_In):
    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=200)


class UserOut(_Out):
    username: str
    display_name: str
    centre_id: str
    role: Literal["coordinator", "lead"]


class TokenOut(_Out):
    token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (a scheme name, not a secret)
    expires_in: int = Field(description="seconds")
    user: UserOut


# A task as its owning service (referral or scheduling) tells it.
class TaskOut(_Out):
    service: Service
    id: int
    kind: Kind
    case_id: str
    centre_id: str
    priority: Literal["routine", "urgent"]
    due_at: datetime
    window_start: datetime | None
    status: Status
    overdue: bool
    claimed_by: str | None
    lease_until: datetime | None
    attempts: int
    result: dict[str, Any] | None
    created_at: datetime
    completed_at: datetime | None
    completed_by: str | None
    hospital_id: str | None = Field(default=None, description="the referring hospital")
    expected_discharge_date: date | None = None


class CardOut(_Out):
    """What a list may show of the person before a task is opened: initials and an age
    band, the district and dong (from intake; no name, birth date, phone or street)."""

    case_id: str
    open: bool
    initials: str | None = Field(description="ㄱㅁㅈ for 김민준, K. M. for Kim Min-jun")
    age_band: str | None = Field(description="at the referral, e.g. 75-79")
    district: str | None
    dong: str | None


class QueueItemOut(TaskOut):
    card: CardOut | None = Field(
        default=None, description="none when intake holds no personal data for the case"
    )


class QueueOut(_Out):
    centre_id: str
    tasks: list[QueueItemOut]
    next: str | None = Field(
        default=None,
        description="pass as `after` (with the same sort and filters) for the next page; "
        "none on the last page",
    )


class ProviderName(_Out):
    ko: str
    en: str


class FindingLabel(_Out):
    ko: str
    en: str


class FindingOut(_Out):
    """A code of the visit findings vocabulary and its labels."""

    code: str
    label: FindingLabel


class FindingsOut(_Out):
    """The visit findings vocabulary, in the order the visit form offers it."""

    findings: list[FindingOut]


class ProviderOut(_Out):
    """A provider contracted by the district (an organisation: no personal data)."""

    id: str
    name: ProviderName


class PlanLineOut(_Out):
    """A line of the care plan, ordered from a provider, as delivered so far."""

    id: int
    line: int = Field(description="the line's number in the plan, 1, 2, …")
    service: str
    quantity: int = Field(description="units ordered")
    unit: str
    provider_id: str
    provider_name: ProviderName | None = None
    planned_start: date
    ordered_on: date
    status: Literal["ordered", "started", "ended", "cancelled"]
    outcome: Literal["delivered", "partly-delivered", "not-delivered"] | None = None
    started_on: date | None = None
    ended_on: date | None = None
    delivered_units: int | None = None
    end_reason: str | None = None
    cost_krw: int | None = Field(default=None, description="of what was delivered")
    district_paid_krw: int | None = None
    self_paid_krw: int | None = None


class CaseFacts(_Out):
    """What referral and scheduling know of the case (no personal data)."""

    case_id: str
    hospital_id: str | None = None
    referral_id: str | None = None
    centre_id: str | None = None
    priority: str | None = None
    fee_support: str | None = None
    requested_services: list[str] = []
    policy_year: int | None = None
    closed: bool | None = None
    reviewed: bool | None = None
    expected_discharge_date: date | None = None
    discharged_at: datetime | None = None
    hold_reason: str | None = None
    services_linked: bool | None = Field(
        default=None, description="services were ordered (scheduling's view)"
    )
    district: str | None = None
    providers: dict[str, list[ProviderOut]] = Field(
        default={},
        description="by service code: the providers contracted in the case's district, "
        "the suggested one first",
    )
    default_start: date | None = Field(
        default=None, description="a line's planned start unless another day is chosen"
    )
    lines: list[PlanLineOut] = Field(default=[], description="the care plan's lines")


class AddressOut(_Out):
    district: str | None = None
    dong: str | None = None
    street: str | None = None
    detail: str | None = None


class PatientOut(_Out):
    name: str | None = None
    birth_date: str | None = None
    sex: str | None = None
    phone: str | None = None
    address: AddressOut
    household_size: int | None = None
    monthly_household_income_krw: int | None = None
    registered_disability: bool | None = None
    lives_alone: bool | None = None
    has_family_caregiver: bool | None = None
    uses_public_care: bool | None = None


class SocialWorkerOut(_Out):
    name: str | None = None
    phone: str | None = None
    email: str | None = None


class ConsentOut(_Out):
    given: bool | None = None
    obtained_at: str | None = None
    method: str | None = None


class ReferralDetails(_Out):
    """One hospital referral of the case, as the hospital sent it, with its corrections."""

    hospital_id: str
    referral_id: str
    outcome: str
    received_at: datetime
    submitted_at: str | None = None
    patient: PatientOut
    mobility: str | None = None
    care_precautions: str = ""
    social_worker: SocialWorkerOut
    consent: ConsentOut
    admission_date: str | None = None
    expected_discharge_date: str | None = None
    priority: str | None = None
    do_not_contact: bool = False
    requested_services: list[str] = []
    updated_at: datetime | None = None
    discharged_at: str | None = None


class PersonalDetails(_Out):
    """Personal data from intake; every read of it is recorded in intake's access audit."""

    case_id: str
    referrals: list[ReferralDetails]


class ContactOut(_Out):
    """How to reach the person for a visit (services/console/contact.py): the patient, or
    for a do-not-contact case the hospital's social worker, whose phone comes first and
    the patient's is not shown at all."""

    via: Literal["patient", "social-worker"]
    instruction: str | None = None
    hospital_id: str | None = None
    referral_id: str | None = None
    name: str | None = None
    phone: str | None = None
    email: str | None = None


class TaskDetailOut(_Out):
    task: TaskOut
    case: CaseFacts
    case_tasks: list[TaskOut] = Field(description="every task of the case, in both services")
    personal: PersonalDetails | None
    contact: ContactOut | None = Field(
        default=None, description="visits only: whom to call (do-not-contact: the social worker)"
    )


# The cross-field rules of the results below, also said in the schema (json_schema_extra),
# so that a body the OpenAPI document calls valid is one the console accepts.
_NULL: dict[str, Any] = {"type": "null"}
_NULL_OR_EMPTY_TEXT: dict[str, Any] = {"anyOf": [_NULL, {"type": "string", "maxLength": 0}]}


class ReviewResult(_In):
    """Result of a review task."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"properties": {"decision": {"const": "eligible"}}},
                {
                    "properties": {
                        "decision": {"const": "ineligible"},
                        "reason_code": {"type": "string"},
                    },
                    "required": ["reason_code"],
                },
            ]
        }
    )

    decision: Literal["eligible", "ineligible"]
    reason_code: ReviewRefusal | None = None

    @model_validator(mode="after")
    def _reason(self) -> ReviewResult:
        if self.decision == "ineligible" and self.reason_code is None:
            raise ValueError("an ineligible decision needs a reason_code")
        return self


class PlanLineIn(_In):
    service: ServiceCode
    quantity: int = Field(description="whole units of the service (half-hours, days, hours, meals)")
    provider_id: str | None = Field(
        default=None,
        min_length=2,
        max_length=40,
        description="a provider contracted for the service in the case's district "
        "(none: the suggested one)",
    )
    planned_start: date | None = Field(
        default=None, description="when the line starts (none: the case's default start)"
    )


class CarePlanResult(_In):
    """Result of a care-plan task: a plan (lines; none = a first week of each requested
    service), or `waitlist` / `could-not-deliver`."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"properties": {"decision": {"const": "plan"}}},
                {"properties": {"lines": {"anyOf": [_NULL, {"type": "array", "maxItems": 0}]}}},
            ]
        }
    )

    decision: Literal["plan", "waitlist", "could-not-deliver"] = "plan"
    lines: list[PlanLineIn] | None = None

    @model_validator(mode="after")
    def _lines(self) -> CarePlanResult:
        if self.decision != "plan" and self.lines:
            raise ValueError(f"a {self.decision} decision takes no lines")
        return self


class VisitResult(_In):
    """Result of a visit task: reached (a visit or call) or not (a failed contact attempt)."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {
                    "properties": {
                        "reached": {"const": True},
                        "precautions_acknowledged": {"type": "boolean"},
                    },
                    "required": ["precautions_acknowledged"],
                },
                {
                    "properties": {
                        "reached": {"const": False},
                        "findings": {"type": "array", "maxItems": 0},
                        "notes": _NULL_OR_EMPTY_TEXT,
                        "precautions_acknowledged": {"anyOf": [_NULL, {"const": False}]},
                    }
                },
            ]
        }
    )

    reached: bool
    precautions_acknowledged: bool | None = None
    findings: list[FindingCode] = Field(
        default=[],
        max_length=20,
        description="codes of the findings vocabulary (GET /api/findings); they travel to "
        "the hospital with their labels. A code the vocabulary lacks is 422 naming the field",
    )
    notes: str | None = Field(
        default=None,
        max_length=4000,
        description="free text; stays in scheduling, never sent on to anyone",
    )

    @model_validator(mode="after")
    def _reached(self) -> VisitResult:
        if self.reached and self.precautions_acknowledged is None:
            raise ValueError("a visit that reached the person needs precautions_acknowledged")
        if not self.reached and (self.findings or self.notes or self.precautions_acknowledged):
            raise ValueError("a failed contact attempt takes no findings, notes or precautions")
        return self


class DeliveryResult(_In):
    """One step of one line on a delivery task: its start (`started_on`), its end
    (`ended_on`, `delivered_units`, and `end_reason` when fewer units than ordered were
    delivered), or both. The task completes when the last line ends."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {
                    "properties": {
                        "started_on": {"type": "string"},
                        "ended_on": _NULL,
                        "delivered_units": _NULL,
                        "end_reason": _NULL,
                    },
                    "required": ["started_on"],
                },
                {
                    "properties": {
                        "ended_on": {"type": "string"},
                        "delivered_units": {"type": "integer"},
                    },
                    "required": ["ended_on", "delivered_units"],
                },
            ]
        }
    )

    line: int = Field(ge=1, le=50, description="the line's number in the plan")
    started_on: date | None = None
    ended_on: date | None = None
    delivered_units: int | None = Field(default=None, ge=0, le=100_000)
    end_reason: LineEndReason | None = None

    @model_validator(mode="after")
    def _step(self) -> DeliveryResult:
        if self.started_on is None and self.ended_on is None:
            raise ValueError("report started_on, or ended_on with delivered_units, or both")
        if self.ended_on is not None and self.delivered_units is None:
            raise ValueError("delivered_units: an end needs the units delivered")
        if self.ended_on is None and (self.delivered_units is not None or self.end_reason):
            raise ValueError("ended_on: units delivered and an end reason come with the end")
        return self


TaskResult = ReviewResult | CarePlanResult | VisitResult | DeliveryResult
RESULT_OF_KIND: dict[str, type[BaseModel]] = {
    "review": ReviewResult,
    "care-plan": CarePlanResult,
    "pre-discharge-visit": VisitResult,
    "post-discharge-visit": VisitResult,
    "delivery": DeliveryResult,
}


class CompleteOut(_Out):
    task: TaskOut
    outcome: str = Field(
        description="reviewed, plan, partial, cap-exhausted, waitlisted, could-not-deliver, "
        "visited, contact-failed, unreachable; delivery: line-started, line-ended, "
        "delivered (the last line ended), could-not-deliver (nothing was delivered)"
    )
    details: dict[str, Any] = {}


class ReassignIn(_In):
    to: str = Field(min_length=1, max_length=100, description="username of a colleague")


# --- search and the case page (issue 10) -------------------------------------------


class SearchIn(_In):
    """Search the centre's cases one way: the hospital's referral id, the case id, or
    name and birth date. Recorded in intake's access audit like a view."""

    # Exactly one way, said in the schema too: each branch names its fields and leaves the
    # other ways out (absent or null).
    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {
                    "properties": {
                        "referral_id": {"type": "string"},
                        "case_id": _NULL,
                        "name": _NULL,
                        "birth_date": _NULL,
                    },
                    "required": ["referral_id"],
                },
                {
                    "properties": {
                        "case_id": {"type": "string"},
                        "referral_id": _NULL,
                        "name": _NULL,
                        "birth_date": _NULL,
                    },
                    "required": ["case_id"],
                },
                {
                    "properties": {
                        "name": {"type": "string"},
                        "birth_date": {"type": "string"},
                        "referral_id": _NULL,
                        "case_id": _NULL,
                    },
                    "required": ["name", "birth_date"],
                },
            ]
        }
    )

    referral_id: str | None = Field(default=None, min_length=1, max_length=64)
    case_id: str | None = Field(default=None, min_length=1, max_length=100)
    name: str | None = Field(default=None, min_length=1, max_length=100, pattern=r"\S")
    birth_date: date | None = None

    @model_validator(mode="after")
    def _one_way(self) -> SearchIn:
        ways = (
            self.referral_id is not None,
            self.case_id is not None,
            self.name is not None or self.birth_date is not None,
        )
        if sum(ways) != 1:
            raise ValueError("search by one of: referral_id, case_id, or name with birth_date")
        if (self.name is None) != (self.birth_date is None):
            raise ValueError("a search by name needs the birth date too (and the other way)")
        return self


class ReferralRefOut(_Out):
    hospital_id: str
    referral_id: str
    outcome: str = Field(description="accepted, linked, or rejected:<reason>")
    received_at: datetime


class FoundCaseOut(CardOut):
    opened_at: datetime
    referrals: list[ReferralRefOut]


class SearchOut(_Out):
    searched_by: Literal["referral-id", "case-id", "name-birth-date"]
    results: list[FoundCaseOut] = Field(description="newest case first, at most 50")


class UpdateOut(_Out):
    """An update sent to a hospital (the hospital contract's status-changed)."""

    hospital_id: str
    referral_id: str
    sequence: int
    status: str
    business_status: str
    reason_code: str | None = None
    reason: str | None = None
    reason_ko: str | None = None
    occurred_at: datetime
    details: dict[str, Any] = {}


class ExitOut(_Out):
    """An exit a coordinator took on the case (issue 10), as the service that owns it
    audited it: a cancellation (intake), a visit reopened (scheduling), a fee-support
    correction (referral)."""

    action: Literal["cancel", "reopen", "fee-support"]
    service: Literal["intake", "scheduling", "referral"]
    at: datetime
    actor: str = Field(description="who took it (the coordinator's username)")
    reason_code: str | None = Field(
        default=None, description="cancel: the contract's reason; reopen: the hold's reason"
    )
    note: str | None = Field(
        default=None,
        description="what the coordinator wrote: for the centre's staff, never sent to a hospital",
    )
    task_id: int | None = Field(default=None, description="reopen: the visit task")
    kind: str | None = Field(default=None, description="reopen: the visit's task kind")
    previous: str | None = Field(default=None, description="fee-support: before")
    fee_support: str | None = Field(default=None, description="fee-support: after")


class CaseOut(_Out):
    """A case's page: its card, facts, every task (both services), every update sent to
    the hospitals with its sequence, the plan's delivery lines, the outcome report once
    closed, and the same person's earlier closed cases. Reading it records no view:
    it shows no more of the person than the queue does."""

    case_id: str
    card: FoundCaseOut | None
    facts: CaseFacts
    tasks: list[TaskOut]
    updates: list[UpdateOut]
    report: dict[str, Any] | None = Field(
        default=None, description="the outcome report of the `completed`/`closed` update"
    )
    earlier: list[FoundCaseOut] = Field(
        default=[], description="the same person's earlier closed cases of this centre"
    )
    exits: list[ExitOut] = Field(
        default=[], description="the exits coordinators took on the case, oldest first"
    )
