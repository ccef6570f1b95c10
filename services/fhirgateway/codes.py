"""The code systems the FHIR gateway speaks, and the carelink CodeSystem resources it serves.

Codes come from the HL7 SDOH Clinical Care implementation guide (Gravity Project)
and from FHIR core where they exist; everything carelink-specific (its services,
the contract's business statuses and reason codes, the Task inputs and outputs a
referral needs) is a carelink code system, served as a CodeSystem resource at
`[base]/CodeSystem/<id>` so an EHR can load it (README "FHIR gateway").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from contracts.hospital_v1 import CancelReason, ServiceCode
from contracts.reasons import REASONS

# The canonical base of carelink's published definitions (a reserved example domain
# until the programme registers its own; the URLs are identifiers, never fetched).
CANONICAL = "https://carelink.example/fhir"
HOSPITAL_SYSTEM = f"{CANONICAL}/sid/hospital"  # registry hospital ids
CENTRE_SYSTEM = f"{CANONICAL}/sid/care-sos-centre"  # registry centre ids
CASE_SYSTEM = f"{CANONICAL}/sid/case"  # carelink's case id

# HL7 published systems.
TASK_CODE_SYSTEM = "http://hl7.org/fhir/CodeSystem/task-code"
SDOHCC_SYSTEM = (
    "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes"
)
CONSENT_SCOPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentscope"
# SDOHCC ServiceRequest.orderDetail (slice SubjectContactDetail): the person does not want
# to be contacted; the guide's form of the contract's `do_not_contact`.
CONTACTING_SUBJECT_PROHIBITED = "contacting-subject-prohibited"
# The guide's referral Task profile. The served Task does not claim it (no meta.profile):
# the profile requires `focus` and `for`, which name the EHR's resources and patient (the
# gateway keeps no personal data), and its status value set excludes `received`, a status
# of the frozen contract (README "FHIR gateway", "What the guides say").
SDOHCC_TASK_PROFILE = (
    "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-TaskForReferralManagement"
)


def system(name: str) -> str:
    return f"{CANONICAL}/CodeSystem/{name}"


SERVICE_SYSTEM = system("service")
BUSINESS_STATUS_SYSTEM = system("business-status")
STATUS_REASON_SYSTEM = system("status-reason")
INPUT_SYSTEM = system("referral-input")
OUTPUT_SYSTEM = system("task-output")
CONSENT_METHOD_SYSTEM = system("consent-method")

# ServiceRequest.category: the SDOH domain each service answers (SDOHCC value set
# "SDOH Category"); informative, the gateway sends it and does not require it.
SDOH_CATEGORY: Mapping[ServiceCode, str] = {
    ServiceCode.TEMPORARY_HOME_CARE: "sdoh-category-unspecified",
    ServiceCode.SHORT_TERM_FACILITY: "inadequate-housing",
    ServiceCode.ACCOMPANIMENT: "transportation-insecurity",
    ServiceCode.HOME_REPAIR: "inadequate-housing",
    ServiceCode.RESIDENTIAL_CONVENIENCE: "inadequate-housing",
    ServiceCode.MEAL_DELIVERY: "food-insecurity",
}

SERVICES: Mapping[str, str] = {
    ServiceCode.TEMPORARY_HOME_CARE: "A care worker visits the home (일시재가), per 30 min",
    ServiceCode.SHORT_TERM_FACILITY: "Short stay in a care facility (단기시설), per day",
    ServiceCode.ACCOMPANIMENT: "Someone goes along to hospital, bank, office (동행지원), per hour",
    ServiceCode.HOME_REPAIR: "Simple repairs (주거편의 수리), per hour",
    ServiceCode.RESIDENTIAL_CONVENIENCE: "Cleaning, disinfection (주거편의 청소), per hour",
    ServiceCode.MEAL_DELIVERY: "Lunch boxes delivered (식사지원), per meal",
}

# Task.input types of a referral (what the contract needs and FHIR has no element for).
INPUTS: Mapping[str, str] = {
    "admission-date": "Admission date (valueDate)",
    "expected-discharge-date": "Expected discharge date (valueDate)",
    "mobility": "Mobility: independent | assisted | wheelchair | bedridden (valueCode)",
    "household-size": "Household size, 1..10 (valueInteger)",
    "monthly-household-income-krw": "Monthly household income in KRW (valueInteger)",
    "registered-disability": "Registered disability (valueBoolean)",
    "lives-alone": "Lives alone (valueBoolean)",
    "has-family-caregiver": "Has a family caregiver (valueBoolean)",
    "uses-public-care": "Uses public care, e.g. a long-term-care grade (valueBoolean)",
    "do-not-contact": "Staff contact the social worker, not the patient (valueBoolean)",
    "discharged-at": "The patient actually left the hospital (valueDateTime, updates only)",
    "requested-service": "A requested service (valueCodeableConcept, on Tasks the gateway serves)",
}

OUTPUTS: Mapping[str, str] = {
    "outcome-report": "The contract's outcome report as JSON (valueAttachment)",
    "service-delivered": "Units of one service as delivered (valueQuantity)",
    "service-cost": "Cost of one service as delivered (valueMoney, KRW)",
    "total-cost": "Cost of everything delivered (valueMoney, KRW)",
    "district-paid": "The part the district paid (valueMoney, KRW)",
    "self-paid": "The part the resident paid (valueMoney, KRW)",
}

CONSENT_METHODS: Mapping[str, str] = {
    "written": "Written consent",
    "verbal": "Verbal consent",
    "electronic": "Electronic consent",
}

# The contract's business statuses (the step inside a status); a reason code that is
# also a business status (rejected, on hold …) is in STATUS_REASON_SYSTEM.
BUSINESS_STATUSES: Mapping[str, str] = {
    "received": "Every submission taken in",
    "triaged": "Automatic checks passed; centre assigned, fee support decided",
    "reviewed": "A coordinator found the patient eligible: the centre commits",
    "pre-discharge-visit-scheduled": "Visit before discharge scheduled",
    "pre-discharge-visit-done": "Visit before discharge done",
    "care-plan-set": "Care plan set",
    "services-ordered": "Services ordered from providers",
    "post-discharge-visit-scheduled": "Visit after discharge scheduled",
    "post-discharge-visit-done": "Visit after discharge done",
    "services-started": "Services started",
    "services-delivered": "Services delivered",
    "resumed": "Back from hold, in the status it left",
    "closed": "The loop is closed: outcome report attached",
    "submission-refused": "A conflicting or late re-submission changed nothing",
}

CANCEL_REASONS = frozenset(reason.value for reason in CancelReason)


def _code_system(
    name: str, title: str, description: str, concepts: Mapping[str, str]
) -> dict[str, Any]:
    return {
        "resourceType": "CodeSystem",
        "id": name,
        "url": system(name),
        "version": "1",
        "name": "Carelink" + "".join(part.title() for part in name.split("-")),
        "title": title,
        "status": "active",
        "experimental": False,
        "publisher": "carelink",
        "description": description,
        "caseSensitive": True,
        "content": "complete",
        "count": len(concepts),
        "concept": [{"code": code, "display": display} for code, display in concepts.items()],
    }


def code_systems() -> dict[str, dict[str, Any]]:
    """Every carelink CodeSystem resource, by id."""
    reasons = {code: f"{r.label_en} ({r.status.value})" for code, r in REASONS.items()}
    resources = [
        _code_system(
            "service", "carelink services", "Care SOS services a referral asks for.", SERVICES
        ),
        _code_system(
            "business-status",
            "carelink business statuses",
            "The step inside a Task status (hospital contract v1).",
            BUSINESS_STATUSES,
        ),
        _code_system(
            "status-reason",
            "carelink status reasons",
            "Why a Task is rejected, on hold, cancelled or failed (hospital contract v1).",
            reasons,
        ),
        _code_system("referral-input", "carelink referral inputs", "Task.input types.", INPUTS),
        _code_system("task-output", "carelink Task outputs", "Task.output types.", OUTPUTS),
        _code_system(
            "consent-method",
            "carelink consent methods",
            "How consent was obtained.",
            CONSENT_METHODS,
        ),
    ]
    return {resource["id"]: resource for resource in resources}


# Notifications: the R4 Subscriptions Backport (rest-hook, id-only payloads).
TASK_TOPIC = f"{CANONICAL}/SubscriptionTopic/task-changed"
BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"
BACKPORT_PAYLOAD_CONTENT = f"{BACKPORT}/backport-payload-content"
BACKPORT_STATUS_PROFILE = f"{BACKPORT}/backport-subscription-status-r4"
BACKPORT_NOTIFICATION_PROFILE = f"{BACKPORT}/backport-subscription-notification-r4"
BACKPORT_SUBSCRIPTION_PROFILE = f"{BACKPORT}/backport-subscription"
BACKPORT_TOPIC_EXTENSION = f"{BACKPORT}/capabilitystatement-subscriptiontopic-canonical"
BACKPORT_STATUS_OPERATION = (
    "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-status"
)
