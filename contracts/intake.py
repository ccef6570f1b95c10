"""Events the intake service appends to `care.cases`."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict

from contracts.cases import CaseEvent, register
from contracts.hospital_v1 import CancelReason, ServiceCode

FeeSupport = Literal["full", "self-pay"]


@register
class CaseReceived(CaseEvent):
    """A submission was accepted for processing: the case exists from here on."""

    ce_type = "carelink.case.received.v1"
    producer = "intake"

    submitted_at: AwareDatetime
    age_band: str
    district: str
    dong: str
    requested_services: list[ServiceCode]
    admission_date: date
    expected_discharge_date: date
    priority: Literal["routine", "urgent"]
    mobility: Literal["independent", "assisted", "wheelchair", "bedridden"]
    registered_disability: bool
    lives_alone: bool
    has_family_caregiver: bool
    uses_public_care: bool
    do_not_contact: bool


@register
class CaseAccepted(CaseEvent):
    """Triaged: eligible on the automatic rules, routed to the district's centre.

    The name predates the contract's revision 2: hospitals hear this as
    `received`/`triaged`; only a coordinator's review makes a case `accepted`
    (`ReviewCompleted`, decision eligible). Kept under its type, so readers
    deployed earlier go on reading it."""

    ce_type = "carelink.case.accepted.v1"
    producer = "intake"

    # An opaque id for the person, allocated by intake, so the annual cap can be
    # summed across all of one person's cases without any personal data on topics.
    person_id: str
    policy_year: int
    fee_support: FeeSupport
    centre_id: str
    district: str
    priority: Literal["routine", "urgent"]
    review_deadline: AwareDatetime
    expected_discharge_date: date
    requested_services: list[ServiceCode]


class FieldError(BaseModel):
    """Where a submission failed the contract; never the submitted value itself."""

    # Tolerant reader, like every internal event (see CaseEvent).
    model_config = ConfigDict(frozen=True, extra="ignore")

    field: str
    message: str
    type: str


@register
class CaseRejected(CaseEvent):
    """The referral is refused before anything else happened to it: the automatic rules,
    or a record so broken that no referral exists under its id. Terminal: a later
    record under the same referral id is a `CaseSubmissionRefused`."""

    ce_type = "carelink.case.rejected.v1"
    producer = "intake"

    reason_code: Literal[
        "missing-consent",
        "ineligible-age",
        "outside-service-area",
        "invalid-referral",
        "conflicting-duplicate",
        "unknown-hospital",
    ]
    reason: str
    errors: list[FieldError] = []


@register
class CaseSubmissionRefused(CaseEvent):
    """A hospital record under a referral intake already holds was refused, and the
    referral goes on unchanged: a re-submission with other content, any submission under
    a finished referral id, or a broken record. The hospital hears its current status
    again with business status `submission-refused` and this reason code.
    hospital_id/referral_id name that referral."""

    ce_type = "carelink.case.submission-refused.v1"
    producer = "intake"

    reason_code: Literal["conflicting-duplicate", "invalid-referral", "unknown-hospital"]
    reason: str
    errors: list[FieldError] = []


@register
class CaseStatusRequested(CaseEvent):
    """The referral's hospital should get the current status again: an identical
    re-submission, or a follow-up for a case that is already closed."""

    ce_type = "carelink.case.status-requested.v1"
    producer = "intake"


@register
class CaseLinked(CaseEvent):
    """Another referral for a person whose case is open joined that case: one case,
    every referring hospital informed. hospital_id/referral_id name the new referral."""

    ce_type = "carelink.case.linked.v1"
    producer = "intake"


@register
class CaseReadmitted(CaseEvent):
    """A discharged patient is back in hospital (a new expected discharge date after discharge)."""

    ce_type = "carelink.case.readmitted.v1"
    producer = "intake"

    expected_discharge_date: date


@register
class DischargeDateChanged(CaseEvent):
    ce_type = "carelink.case.discharge-date-changed.v1"
    producer = "intake"

    expected_discharge_date: date


@register
class CaseDischarged(CaseEvent):
    """The patient left hospital: the post-discharge clock starts."""

    ce_type = "carelink.case.discharged.v1"
    producer = "intake"

    discharged_at: AwareDatetime


@register
class CaseCancelled(CaseEvent):
    """The case was cancelled: the hospital withdrew the referral, or a coordinator of
    the centre ended the case (deceased, transferred, declined, consent withdrawn). Any
    free-text reason or note stays in intake's store. Every service closes its work on
    it, whoever cancelled."""

    ce_type = "carelink.case.cancelled.v1"
    producer = "intake"

    reason_code: CancelReason
    # Who cancelled (added in issue 10, optional: readers deployed earlier ignore it).
    cancelled_by: Literal["hospital", "centre"] = "hospital"


@register
class PersonalDataDestroyed(CaseEvent):
    """Intake destroyed the case's personal data (PIPA art. 21): its retention period
    after closure ended, or consent was withdrawn. Ids only. Every service that keeps
    free text a person typed about the case (visit notes, correction notes) deletes it
    on this event; the case's pseudonymous facts stay for statistics."""

    ce_type = "carelink.case.personal-data-destroyed.v1"
    producer = "intake"

    reason: Literal["retention-expired", "consent-withdrawn"]
