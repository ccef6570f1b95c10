"""The hospital contract, version 1: what hospitals send and what they receive.

Frozen: adding an optional field is allowed, renaming or removing anything
needs a v2 module beside this one.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

HOSPITAL_ID_PATTERN = r"^[a-z0-9-]{2,40}$"

HospitalId = Annotated[str, StringConstraints(pattern=HOSPITAL_ID_PATTERN)]
ReferralId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
# Hospitals send free text; bounded so one record cannot carry megabytes into our stores.
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200)]
LongText = Annotated[str, StringConstraints(max_length=4000)]


class ServiceCode(StrEnum):
    TEMPORARY_HOME_CARE = "temporary_home_care"
    SHORT_TERM_FACILITY = "short_term_facility"
    ACCOMPANIMENT = "accompaniment"
    HOME_REPAIR = "home_repair"
    RESIDENTIAL_CONVENIENCE = "residential_convenience"
    MEAL_DELIVERY = "meal_delivery"


class _Contract(BaseModel):
    # Unknown fields are tolerated so a hospital may send optional v1 additions early.
    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True)


class SocialWorker(_Contract):
    name: ShortText
    phone: ShortText
    email: EmailStr | None = None


class Address(_Contract):
    district: ShortText = Field(description='As in the policy file, e.g. "Songpa-gu"')
    dong: ShortText
    street: ShortText
    detail: Annotated[str, StringConstraints(max_length=200)] | None = None


class Patient(_Contract):
    name: ShortText
    birth_date: date
    sex: Literal["F", "M", "X"]
    phone: ShortText | None = None
    address: Address
    household_size: int = Field(ge=1, le=10)
    monthly_household_income_krw: int = Field(ge=0)
    registered_disability: bool
    lives_alone: bool
    has_family_caregiver: bool
    uses_public_care: bool


class Consent(_Contract):
    given: bool
    obtained_at: AwareDatetime
    method: Literal["written", "verbal", "electronic"]


class ReferralSubmitted(_Contract):
    """`carelink.referral.submitted.v1`: a medical social worker refers a patient."""

    referral_id: ReferralId
    hospital_id: HospitalId
    submitted_at: AwareDatetime
    social_worker: SocialWorker
    patient: Patient
    admission_date: date
    expected_discharge_date: date
    mobility: Literal["independent", "assisted", "wheelchair", "bedridden"]
    requested_services: list[ServiceCode] = Field(min_length=1, max_length=6)
    care_precautions: LongText = ""
    consent: Consent
    priority: Literal["routine", "urgent"]
    do_not_contact: bool = False

    @field_validator("expected_discharge_date")
    @classmethod
    def _discharge_after_admission(cls, value: date, info: ValidationInfo) -> date:
        # A field validator, so the hospital's error names expected_discharge_date.
        admission = info.data.get("admission_date")
        if admission is not None and value < admission:
            raise ValueError("must not be before admission_date")
        return value


class ReferralUpdated(_Contract):
    """`carelink.referral.updated.v1`: corrections, most often a new discharge date."""

    referral_id: ReferralId
    hospital_id: HospitalId
    updated_at: AwareDatetime
    expected_discharge_date: date | None = None
    care_precautions: LongText | None = None
    priority: Literal["routine", "urgent"] | None = None
    do_not_contact: bool | None = None


class PatientDischarged(_Contract):
    """`carelink.patient.discharged.v1`: the patient actually left the hospital."""

    referral_id: ReferralId
    hospital_id: HospitalId
    discharged_at: AwareDatetime


class CancelReason(StrEnum):
    CANCELLED_BY_HOSPITAL = "cancelled-by-hospital"
    CONSENT_WITHDRAWN = "consent-withdrawn"
    DECLINED_BY_PATIENT = "declined-by-patient"
    DECEASED = "deceased"
    TRANSFERRED = "transferred"


class ReferralCancelled(_Contract):
    """`carelink.referral.cancelled.v1`: the hospital withdraws the referral."""

    referral_id: ReferralId
    hospital_id: HospitalId
    cancelled_at: AwareDatetime
    reason_code: CancelReason
    reason: LongText = ""


class Status(StrEnum):
    """FHIR R4 Task status."""

    RECEIVED = "received"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    IN_PROGRESS = "in-progress"
    ON_HOLD = "on-hold"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"


# A reason is required whenever the status is one of these (FHIR / Gravity SDOH guide).
STATUSES_NEEDING_REASON = frozenset(
    {Status.REJECTED, Status.ON_HOLD, Status.CANCELLED, Status.FAILED}
)


class StatusChanged(_Contract):
    """`carelink.referral.status-changed.v1`: the single update type hospitals receive."""

    referral_id: ReferralId
    case_id: str
    sequence: int = Field(ge=1)
    status: Status
    business_status: str
    reason_code: str | None = None
    reason: str | None = None
    # Revision 2: the same reason in Korean, whenever `reason` is present (an optional
    # field, so an update written before revision 2 still validates).
    reason_ko: str | None = None
    occurred_at: AwareDatetime
    details: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _reason_when_required(self) -> StatusChanged:
        if self.status in STATUSES_NEEDING_REASON and not self.reason_code:
            raise ValueError(f"reason_code is required when status is {self.status.value}")
        return self


SUBMITTED = "carelink.referral.submitted.v1"
UPDATED = "carelink.referral.updated.v1"
DISCHARGED = "carelink.patient.discharged.v1"
CANCELLED = "carelink.referral.cancelled.v1"
STATUS_CHANGED = "carelink.referral.status-changed.v1"

INBOUND_TYPES: dict[str, type[_Contract]] = {
    SUBMITTED: ReferralSubmitted,
    UPDATED: ReferralUpdated,
    DISCHARGED: PatientDischarged,
    CANCELLED: ReferralCancelled,
}
