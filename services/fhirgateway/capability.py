"""What the gateway says about itself: the CapabilityStatement (`[base]/metadata`) and
the SMART configuration (`[base]/.well-known/smart-configuration`). They say exactly
what api.py serves, no more; a unit test holds them to it."""

from __future__ import annotations

from typing import Any

from services.fhirgateway import codes
from services.fhirgateway.auth import ALGORITHMS
from services.fhirgateway.outcomes import FHIR_JSON

SEARCH_PARAMS = (
    (
        "identifier",
        "token",
        "The hospital's referral id (system|value or value), or carelink's case id",
    ),
    ("status", "token", "Task status; several values separated by commas"),
    ("_lastUpdated", "date", "When the Task last changed: ge, gt, le, lt prefixes"),
    ("_count", "number", "Page size, at most 100"),
)
SCOPES = (
    "system/Task.read",
    "system/Task.write",
    "system/Subscription.read",
    "system/Subscription.write",
)


def token_url(base_url: str) -> str:
    return f"{base_url}/auth/token"


def capability_statement(base_url: str, version: str) -> dict[str, Any]:
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-12-02",
        "publisher": "carelink",
        "kind": "instance",
        "software": {"name": "carelink FHIR gateway", "version": version},
        "implementation": {
            "description": "Closed-loop referrals to district Care SOS centres (hospital contract v1)",
            "url": base_url,
        },
        "fhirVersion": "4.0.1",
        "format": [FHIR_JSON, "json"],
        "rest": [
            {
                "mode": "server",
                "documentation": (
                    "One hospital per access token: a hospital sees and changes its own Tasks "
                    "only. POST a Task with its ServiceRequest (focus), Patient (for), "
                    "Practitioner (the ServiceRequest's requester), Organization (requester) "
                    "and Consent contained, or all of them in a transaction Bundle to [base]."
                ),
                "security": {
                    "cors": False,
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                    "code": "SMART-on-FHIR",
                                }
                            ]
                        }
                    ],
                    "extension": [
                        {
                            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                            "extension": [{"url": "token", "valueUri": token_url(base_url)}],
                        }
                    ],
                    "description": "OAuth 2.0 client credentials with private_key_jwt (SMART Backend Services)",
                },
                "resource": [
                    {
                        "type": "Task",
                        "interaction": [
                            {"code": "create"},
                            {"code": "read"},
                            {"code": "update"},
                            {"code": "search-type"},
                        ],
                        "versioning": "versioned",
                        "readHistory": False,
                        "updateCreate": False,
                        "conditionalCreate": False,
                        "searchParam": [
                            {"name": name, "type": kind, "documentation": doc}
                            for name, kind, doc in SEARCH_PARAMS
                        ],
                    },
                    {
                        "type": "Subscription",
                        # The one topic, as the Backport advertises topics in R4.
                        "extension": [
                            {
                                "url": codes.BACKPORT_TOPIC_EXTENSION,
                                "valueCanonical": codes.TASK_TOPIC,
                            }
                        ],
                        "supportedProfile": [codes.BACKPORT_SUBSCRIPTION_PROFILE],
                        "interaction": [{"code": "create"}, {"code": "read"}, {"code": "delete"}],
                        "operation": [
                            {"name": "status", "definition": codes.BACKPORT_STATUS_OPERATION}
                        ],
                        "documentation": (
                            "R4 Subscriptions Backport: criteria "
                            f"{codes.TASK_TOPIC}, channel rest-hook, payload id-only; "
                            "no Subscription search"
                        ),
                    },
                    {
                        "type": "CodeSystem",
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                    },
                ],
                "interaction": [{"code": "transaction"}],
            }
        ],
    }


def smart_configuration(base_url: str) -> dict[str, Any]:
    return {
        "token_endpoint": token_url(base_url),
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": list(ALGORITHMS),
        "grant_types_supported": ["client_credentials"],
        "scopes_supported": list(SCOPES),
        "capabilities": ["client-confidential-asymmetric"],
    }
