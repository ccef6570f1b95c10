"""FHIR resources for the gateway's tests, built with the model library (fhir.resources).

`referral_task(data)` turns a contract `referral.submitted` data object (the
simulated hospital's, Faker ko_KR: fake people only) into the Task an EHR would
POST: contained Patient, ServiceRequest, Practitioner (the social worker),
Organization (the hospital) and Consent; `referral_bundle(data)` the same as a
transaction Bundle.
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.consent import Consent
from fhir.resources.R4B.organization import Organization
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.practitioner import Practitioner
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.subscription import Subscription
from fhir.resources.R4B.task import Task

from services.fhirgateway import codes

REFERRAL_SYSTEM = "https://ehr.example/referral"
GENDER = {"F": "female", "M": "male", "X": "other"}


def _input(code: str, **value: Any) -> dict[str, Any]:
    return {"type": {"coding": [{"system": codes.INPUT_SYSTEM, "code": code}]}, **value}


def parts(data: dict[str, Any], ref: Any) -> dict[str, Any]:
    """The resources of one referral as dicts; `ref(kind, id)` makes a reference."""
    patient = data["patient"]
    address = patient["address"]
    worker = data["social_worker"]
    consent = data["consent"]
    resources = {
        "patient": Patient.model_validate(
            {
                "resourceType": "Patient",
                "id": "patient",
                "name": [{"text": patient["name"]}],
                "birthDate": patient["birth_date"],
                "gender": GENDER[patient["sex"]],
                "telecom": [{"system": "phone", "value": patient["phone"]}],
                "address": [
                    {
                        "district": address["district"],
                        "line": [address["dong"], address["street"], address["detail"]],
                        "country": "KR",
                    }
                ],
            }
        ),
        "worker": Practitioner.model_validate(
            {
                "resourceType": "Practitioner",
                "id": "worker",
                "name": [{"text": worker["name"]}],
                "telecom": [
                    {"system": "phone", "value": worker["phone"]},
                    {"system": "email", "value": worker["email"]},
                ],
            }
        ),
        "hospital": Organization.model_validate(
            {
                "resourceType": "Organization",
                "id": "hospital",
                "identifier": [{"system": codes.HOSPITAL_SYSTEM, "value": data["hospital_id"]}],
                "name": data["hospital_id"],
            }
        ),
        "request": ServiceRequest.model_validate(
            {
                "resourceType": "ServiceRequest",
                "id": "request",
                "status": "active",
                "intent": "order",
                "code": {"text": "Care SOS services after discharge"},
                # SDOHCC ServiceRequest: at least one SDOH category (the gateway reads none).
                "category": [
                    {
                        "coding": [
                            {"system": codes.SDOHCC_SYSTEM, "code": "sdoh-category-unspecified"}
                        ]
                    }
                ],
                "orderDetail": [
                    {"coding": [{"system": codes.SERVICE_SYSTEM, "code": service}]}
                    for service in data["requested_services"]
                ],
                "subject": ref("Patient", "patient"),
                "requester": ref("Practitioner", "worker"),
            }
        ),
        "consent": Consent.model_validate(
            {
                "resourceType": "Consent",
                "id": "consent",
                "status": "active" if consent["given"] else "rejected",
                "scope": {
                    "coding": [{"system": codes.CONSENT_SCOPE_SYSTEM, "code": "patient-privacy"}]
                },
                "category": [
                    # SDOHCC Consent's required category, then carelink's consent method.
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                                "code": "IDSCL",
                            }
                        ]
                    },
                    {
                        "coding": [
                            {"system": codes.CONSENT_METHOD_SYSTEM, "code": consent["method"]}
                        ]
                    },
                ],
                "patient": ref("Patient", "patient"),
                "dateTime": consent["obtained_at"],
            }
        ),
    }
    return {
        key: value.model_dump(mode="json", exclude_none=True) for key, value in resources.items()
    }


def _task(data: dict[str, Any], ref: Any, contained: list[dict[str, Any]] | None) -> Task:
    patient = data["patient"]
    body: dict[str, Any] = {
        "resourceType": "Task",
        "identifier": [{"system": REFERRAL_SYSTEM, "value": data["referral_id"]}],
        "status": "requested",
        "intent": "order",
        "priority": data["priority"],
        "code": {"coding": [{"system": codes.TASK_CODE_SYSTEM, "code": "fulfill"}]},
        "focus": ref("ServiceRequest", "request"),
        "for": ref("Patient", "patient"),
        "requester": ref("Organization", "hospital"),
        "authoredOn": data["submitted_at"],
        "input": [
            _input("admission-date", valueDate=data["admission_date"]),
            _input("expected-discharge-date", valueDate=data["expected_discharge_date"]),
            _input("mobility", valueCode=data["mobility"]),
            _input("household-size", valueInteger=patient["household_size"]),
            _input(
                "monthly-household-income-krw", valueInteger=patient["monthly_household_income_krw"]
            ),
            _input("registered-disability", valueBoolean=patient["registered_disability"]),
            _input("lives-alone", valueBoolean=patient["lives_alone"]),
            _input("has-family-caregiver", valueBoolean=patient["has_family_caregiver"]),
            _input("uses-public-care", valueBoolean=patient["uses_public_care"]),
            _input("do-not-contact", valueBoolean=data["do_not_contact"]),
        ],
    }
    if data.get("care_precautions"):
        body["note"] = [{"text": data["care_precautions"]}]
    if contained is not None:
        body["contained"] = contained
    return Task.model_validate(body)


def referral_task(data: dict[str, Any]) -> Task:
    """The Task with its resources contained."""
    contained = list(parts(data, lambda kind, id: {"reference": f"#{id}"}).values())
    return _task(data, lambda kind, id: {"reference": f"#{id}"}, contained)


def referral_bundle(data: dict[str, Any]) -> Bundle:
    """The Task and its resources as a transaction Bundle (urn:uuid references)."""

    def urn(_kind: str, id: str) -> dict[str, str]:
        return {"reference": f"urn:uuid:{data['referral_id']}-{id}"}

    resources = list(parts(data, urn).values())
    task = _task(data, urn, None).model_dump(mode="json", exclude_none=True)
    entries = [
        {
            "fullUrl": urn("", r["id"])["reference"],
            "resource": {k: v for k, v in r.items() if k != "id"},
            "request": {"method": "POST", "url": r["resourceType"]},
        }
        for r in resources
    ]
    entries.append(
        {
            "fullUrl": urn("", "task")["reference"],
            "resource": task,
            "request": {"method": "POST", "url": "Task"},
        }
    )
    return Bundle.model_validate(
        {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    )


def as_json(model: Any) -> dict[str, Any]:
    result: dict[str, Any] = model.model_dump(mode="json", exclude_none=True)
    return result


def rest_hook_subscription(endpoint: str) -> Subscription:
    """An R4 Subscriptions Backport rest-hook subscription to Task changes, id-only."""
    return Subscription.model_validate(
        {
            "resourceType": "Subscription",
            "status": "requested",
            "reason": "referral updates for the EHR",
            "criteria": codes.TASK_TOPIC,
            "channel": {
                "type": "rest-hook",
                "endpoint": endpoint,
                "payload": "application/fhir+json",
                "_payload": {
                    "extension": [
                        {
                            "url": codes.BACKPORT_PAYLOAD_CONTENT,
                            "valueCode": "id-only",
                        }
                    ]
                },
            },
        }
    )
