"""The FHIR gateway against the guides it follows (issue 14): the HL7 SDOH Clinical Care
IG (codes, the referral Task profile's rules) and the R4 Subscriptions Backport (the
notification Bundle, the SubscriptionStatus parameters, $status, the Subscription shape),
and a CapabilityStatement that says exactly what the routes serve.

The expected values are written out here as the guides publish them (README "FHIR
gateway", "What the guides say"), not taken from codes.py, so a wrong constant fails."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from fastapi.routing import APIRoute
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.parameters import Parameters
from fhir.resources.R4B.task import Task

from services.fhirgateway import api, codes, mapping
from services.fhirgateway.capability import capability_statement
from services.fhirgateway.notify import notification_bundle, subscription_status
from services.fhirgateway.settings import BASE_PATH, FhirGatewaySettings
from services.tools.simulators.referrals import FakeHospital
from tests.fhir_builders import as_json, referral_task

SDOHCC_TEMPORARY_CODES = (
    "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes"
)
# SDOHCC ValueSet SDOH Category (SDOHCC-ValueSetSDOHCategory), as published.
SDOH_CATEGORY_VALUE_SET = frozenset(
    {
        "sdoh-category-unspecified",
        "food-insecurity",
        "housing-instability",
        "homelessness",
        "inadequate-housing",
        "transportation-insecurity",
        "financial-insecurity",
        "material-hardship",
        "educational-attainment",
        "employment-status",
        "veteran-status",
        "stress",
        "social-connection",
        "intimate-partner-violence",
        "elder-abuse",
        "personal-health-literacy",
        "health-insurance-coverage-status",
        "medical-cost-burden",
        "digital-literacy",
        "digital-access",
        "utility-insecurity",
        "incarceration-status",
        "language-access",
    }
)
# SDOHCC ValueSet Referral Task Status: FHIR's task-status without ready and received.
REFERRAL_TASK_STATUSES = frozenset(
    {
        "draft",
        "requested",
        "accepted",
        "rejected",
        "cancelled",
        "in-progress",
        "on-hold",
        "failed",
        "completed",
        "entered-in-error",
    }
)
BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport"
BASE = "https://gw.example/fhir"
NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
HOSPITAL = "police-hospital"


@pytest.fixture
def data() -> dict[str, Any]:
    return FakeHospital(HOSPITAL, seed=11).submission()


def submit(body: dict[str, Any]) -> mapping.Submission:
    task = mapping.parse(body, "Task")
    return mapping.submission(task, mapping.References.contained(task), hospital_id=HOSPITAL)


# --- SDOH Clinical Care -----------------------------------------------------------------


def test_the_guides_canonical_urls() -> None:
    assert codes.SDOHCC_SYSTEM == SDOHCC_TEMPORARY_CODES
    assert codes.SDOHCC_TASK_PROFILE == (
        "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/"
        "SDOHCC-TaskForReferralManagement"
    )
    assert codes.TASK_CODE_SYSTEM == "http://hl7.org/fhir/CodeSystem/task-code"
    assert codes.CONSENT_SCOPE_SYSTEM == "http://terminology.hl7.org/CodeSystem/consentscope"


def test_every_sdoh_category_is_in_the_guides_value_set(data: dict[str, Any]) -> None:
    assert set(codes.SDOH_CATEGORY.values()) <= SDOH_CATEGORY_VALUE_SET
    assert codes.SDOH_CATEGORY["meal_delivery"] == "food-insecurity"
    state = mapping.new_state("task-1", submit(as_json(referral_task(data))), NOW)
    served = mapping.task_resource(state)
    categories = [
        coding
        for item in served["input"]
        for coding in item.get("valueCodeableConcept", {}).get("coding", [])
        if coding["system"] == SDOHCC_TEMPORARY_CODES
    ]
    assert categories
    assert {c["code"] for c in categories} <= SDOH_CATEGORY_VALUE_SET


def test_the_task_has_the_profiles_fixed_values(data: dict[str, Any]) -> None:
    state = mapping.new_state("task-1", submit(as_json(referral_task(data))), NOW)
    served = mapping.task_resource(state)
    assert served["intent"] == "order"
    assert served["code"] == {
        "coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]
    }
    # It does not claim the profile: no focus/for (no personal data) and `received`.
    assert "profile" not in served["meta"]
    assert "received" not in REFERRAL_TASK_STATUSES


def test_a_status_reason_always_has_text(data: dict[str, Any]) -> None:
    state = mapping.new_state("task-1", submit(as_json(referral_task(data))), NOW)
    bare = replace(state, status="rejected", reason_code="duplicate", reason=None, reason_ko=None)
    reason = mapping.task_resource(bare)["statusReason"]
    assert reason["text"] == "duplicate"  # SDOHCC: statusReason.text 1..1
    assert Task.model_validate(mapping.task_resource(bare)).statusReason.text == "duplicate"


def test_no_output_is_typed_resulting_activity() -> None:
    """SDOHCC types with resulting-activity only outputs whose value is a Procedure
    reference or a US Core procedure code; carelink's are quantities, money, a report."""
    report = {
        "services_delivered": [
            {"service": "meal_delivery", "delivered_units": 20, "unit": "meal", "cost_krw": 1}
        ],
        "total_krw": 1,
        "publicly_paid_krw": 1,
        "self_paid_krw": 0,
    }
    outputs = mapping.outcome_outputs(report)
    assert outputs
    for output in outputs:
        systems = {c["system"] for c in output["type"]["coding"]}
        assert SDOHCC_TEMPORARY_CODES not in systems
        assert output["type"]["coding"][0]["system"] == codes.OUTPUT_SYSTEM


def test_the_guides_contacting_subject_prohibited_is_do_not_contact(
    data: dict[str, Any],
) -> None:
    body = as_json(referral_task({**data, "do_not_contact": False}))
    body["input"] = [i for i in body["input"] if i["type"]["coding"][0]["code"] != "do-not-contact"]
    assert submit(body).event.do_not_contact is False
    request = next(r for r in body["contained"] if r["resourceType"] == "ServiceRequest")
    request["orderDetail"].append(
        {"coding": [{"system": SDOHCC_TEMPORARY_CODES, "code": "contacting-subject-prohibited"}]}
    )
    assert submit(body).event.do_not_contact is True


# --- R4 Subscriptions Backport ------------------------------------------------------------


def test_the_backports_canonical_urls() -> None:
    sd = f"{BACKPORT}/StructureDefinition"
    ours = {
        "notification": codes.BACKPORT_NOTIFICATION_PROFILE,
        "status": codes.BACKPORT_STATUS_PROFILE,
        "subscription": codes.BACKPORT_SUBSCRIPTION_PROFILE,
        "payload": codes.BACKPORT_PAYLOAD_CONTENT,
        "topic": codes.BACKPORT_TOPIC_EXTENSION,
        "$status": codes.BACKPORT_STATUS_OPERATION,
    }
    assert ours == {
        "notification": f"{sd}/backport-subscription-notification-r4",
        "status": f"{sd}/backport-subscription-status-r4",
        "subscription": f"{sd}/backport-subscription",
        "payload": f"{sd}/backport-payload-content",
        "topic": f"{sd}/capabilitystatement-subscriptiontopic-canonical",
        "$status": f"{BACKPORT}/OperationDefinition/backport-subscription-status",
    }


def test_an_id_only_notification_has_the_backports_shape() -> None:
    bundle = notification_bundle(BASE, "sub-1", "task-1", 3, NOW)
    assert Bundle.model_validate(bundle).type == "history"
    assert bundle["meta"]["profile"] == [codes.BACKPORT_NOTIFICATION_PROFILE]
    first = bundle["entry"][0]
    # The first entry is the SubscriptionStatus; its fullUrl a real, stable urn:uuid.
    uuid.UUID(first["fullUrl"].removeprefix("urn:uuid:"))
    assert first["fullUrl"].startswith("urn:uuid:")
    assert (
        first["fullUrl"]
        == notification_bundle(BASE, "sub-1", "task-1", 3, NOW)["entry"][0]["fullUrl"]
    )
    assert (
        first["fullUrl"]
        != notification_bundle(BASE, "sub-1", "task-1", 4, NOW)["entry"][0]["fullUrl"]
    )
    assert first["request"] == {"method": "GET", "url": f"{BASE}/Subscription/sub-1/$status"}
    status = Parameters.model_validate(first["resource"])
    params = {p.name: p for p in status.parameter}
    assert params["subscription"].valueReference.reference == f"{BASE}/Subscription/sub-1"
    assert params["status"].valueCode == "active"
    assert params["type"].valueCode == "event-notification"
    assert params["events-since-subscription-start"].valueString == "3"
    parts = {p.name: p for p in params["notification-event"].part}
    assert parts["event-number"].valueString == "3"
    assert parts["focus"].valueReference.reference == f"{BASE}/Task/task-1"
    # id-only: the Task's entry has its address and request, never its content.
    assert bundle["entry"][1] == {
        "fullUrl": f"{BASE}/Task/task-1",
        "request": {"method": "PUT", "url": "Task/task-1"},
        "response": {"status": "200"},
    }


def test_the_status_operations_parameters() -> None:
    status = subscription_status(BASE, "sub-1", "error", "query-status", 7)
    Parameters.model_validate(status)
    params = {p["name"]: p for p in status["parameter"]}
    assert params["type"]["valueCode"] == "query-status"
    assert params["status"]["valueCode"] == "error"
    assert params["events-since-subscription-start"]["valueString"] == "7"
    assert "notification-event" not in params


def test_a_served_subscription_has_the_backports_shape() -> None:
    served = api._subscription_resource("sub-1", "active", "https://ehr.example/hook", None)
    assert served["meta"]["profile"] == [f"{BACKPORT}/StructureDefinition/backport-subscription"]
    assert served["criteria"] == codes.TASK_TOPIC
    assert served["channel"]["payload"] == "application/fhir+json"
    assert served["channel"]["_payload"]["extension"] == [
        {"url": f"{BACKPORT}/StructureDefinition/backport-payload-content", "valueCode": "id-only"}
    ]
    assert "header" not in served["channel"]  # headers may hold the EHR's secrets


# --- the CapabilityStatement says exactly what is served ----------------------------------

# Routes that are not FHIR resource interactions: the statement itself, SMART's
# configuration, the token endpoint, and the second spelling of the transaction URL.
NOT_IN_THE_STATEMENT = {
    ("GET", "/metadata"),
    ("GET", "/.well-known/smart-configuration"),
    ("POST", "/auth/token"),
    ("POST", "/"),
}
INTERACTIONS = {
    "create": ("POST", "/{type}"),
    "read": ("GET", "/{type}/{id}"),
    "update": ("PUT", "/{type}/{id}"),
    "delete": ("DELETE", "/{type}/{id}"),
    "search-type": ("GET", "/{type}"),
}


def test_the_capability_statement_lists_exactly_the_routes() -> None:
    statement = capability_statement(BASE, "1")
    CapabilityStatement.model_validate(statement)
    declared: set[tuple[str, str]] = set()
    rest = statement["rest"][0]
    for resource in rest["resource"]:
        for interaction in resource["interaction"]:
            method, path = INTERACTIONS[interaction["code"]]
            declared.add((method, path.replace("{type}", resource["type"])))
        for operation in resource.get("operation", []):
            declared.add(("GET", f"/{resource['type']}/{{id}}/${operation['name']}"))
    if {"code": "transaction"} in rest["interaction"]:
        declared.add(("POST", ""))

    gateway = api.Gateway(cast(Any, None), cast(Any, None), FhirGatewaySettings())
    served: set[tuple[str, str]] = set()
    for route in api.router(gateway).routes:
        assert isinstance(route, APIRoute)
        path = route.path.removeprefix(BASE_PATH)
        for method in route.methods:
            # Route parameters have their own names (task_id, sub_id, cs_id).
            parts = [("{id}" if p.startswith("{") else p) for p in path.split("/")]
            served.add((method, "/".join(parts)))
    assert served - NOT_IN_THE_STATEMENT == declared

    subscription = next(r for r in rest["resource"] if r["type"] == "Subscription")
    assert subscription["supportedProfile"] == [
        f"{BACKPORT}/StructureDefinition/backport-subscription"
    ]
    assert subscription["extension"] == [
        {
            "url": f"{BACKPORT}/StructureDefinition/capabilitystatement-subscriptiontopic-canonical",
            "valueCanonical": codes.TASK_TOPIC,
        }
    ]
    assert subscription["operation"] == [
        {
            "name": "status",
            "definition": f"{BACKPORT}/OperationDefinition/backport-subscription-status",
        }
    ]
    task = next(r for r in rest["resource"] if r["type"] == "Task")
    assert "supportedProfile" not in task  # see test_the_task_has_the_profiles_fixed_values
