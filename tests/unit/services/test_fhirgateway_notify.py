"""The FHIR gateway's notifications and self-description (issue 14): id-only
notification Bundles, bounded backoff, a valid CapabilityStatement."""

from __future__ import annotations

from datetime import UTC, datetime

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from services.fhirgateway import codes
from services.fhirgateway.capability import capability_statement, smart_configuration
from services.fhirgateway.notify import backoff, notification_bundle


def test_a_notification_names_the_task_and_carries_nothing_of_it() -> None:
    bundle = notification_bundle("https://gw.example/fhir", "sub-1", "task-1", 3, datetime.now(UTC))
    assert Bundle.model_validate(bundle).type == "history"
    status = bundle["entry"][0]["resource"]
    assert status["meta"]["profile"] == [codes.BACKPORT_STATUS_PROFILE]
    params = {p["name"]: p for p in status["parameter"]}
    assert params["topic"]["valueCanonical"] == codes.TASK_TOPIC
    assert params["events-since-subscription-start"]["valueString"] == "3"
    assert "resource" not in bundle["entry"][1]
    assert bundle["entry"][1]["fullUrl"] == "https://gw.example/fhir/Task/task-1"


def test_backoff_grows_and_is_bounded() -> None:
    assert [backoff(n, 1.0, 300.0) for n in (1, 2, 3, 10, 20)] == [1.0, 2.0, 4.0, 300.0, 300.0]


def test_the_capability_statement_is_valid_and_names_the_token_endpoint() -> None:
    statement = CapabilityStatement.model_validate(
        capability_statement("https://gw.example/fhir", "1")
    )
    task = next(r for r in statement.rest[0].resource if r.type == "Task")
    assert {p.name for p in task.searchParam} == {"identifier", "status", "_lastUpdated", "_count"}
    assert smart_configuration("https://gw.example/fhir")["token_endpoint"] == (
        "https://gw.example/fhir/auth/token"
    )


def test_the_gateways_default_port_is_the_stacks() -> None:
    from services.fhirgateway.settings import FhirGatewaySettings
    from services.tools.stack.deployables import FHIR_GATEWAY, FHIR_GATEWAY_PORT

    settings = FhirGatewaySettings()
    assert (settings.service, settings.health_port) == (FHIR_GATEWAY, FHIR_GATEWAY_PORT)
    assert settings.health_host == "127.0.0.1"
    assert settings.public_base_url == "http://127.0.0.1:8191/fhir"
