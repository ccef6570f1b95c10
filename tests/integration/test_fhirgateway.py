"""The FHIR gateway as a process on the real broker and PostgreSQL (issue 14): tokens
per hospital, a Task in becomes the contract's submission on the hospital's referrals
topic, a wrong hospital gets 403/404, invalid resources an OperationOutcome with the
path, and a subscription's loopback receiver a notification (id-only) when an update
moves the Task. One gateway per module; fresh hospitals and referral ids per test."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.task import Task

from contracts.cloudevents import Envelope
from contracts.hospital_v1 import (
    STATUS_CHANGED,
    ReferralCancelled,
    ReferralSubmitted,
    StatusChanged,
)
from contracts.topics import HOSPITAL_PARTITIONS, referrals, updates
from services.fhirgateway import codes
from services.tools.localinfra import Endpoints
from services.tools.simulators.referrals import FakeHospital
from tests.fhir_builders import as_json, referral_bundle, referral_task, rest_hook_subscription
from tests.integration.fhirgateway_helpers import RunningGateway, receiver, start_gateway
from tests.integration.runtime_helpers import produce, read_records, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]
FHIR_JSON = "application/fhir+json"


@pytest.fixture(scope="module")
def gateway(
    endpoints: Endpoints, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    tag = uuid.uuid4().hex[:6]
    running = start_gateway(
        endpoints, tmp_path_factory.mktemp("fhirgateway"), [f"fg-{tag}-a", f"fg-{tag}-b"]
    )
    try:
        yield running
    finally:
        running.process.stop()


def hospitals(gateway: RunningGateway) -> tuple[str, str]:
    a, b = sorted(gateway.clients)
    return a, b


@pytest.fixture
async def ehr_a(gateway: RunningGateway) -> AsyncIterator[httpx.AsyncClient]:
    client = await gateway.client(hospitals(gateway)[0])
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def ehr_b(gateway: RunningGateway) -> AsyncIterator[httpx.AsyncClient]:
    client = await gateway.client(hospitals(gateway)[1])
    try:
        yield client
    finally:
        await client.aclose()


def referral(hospital_id: str) -> dict[str, Any]:
    return FakeHospital(hospital_id).submission(referral_id=f"F-{uuid.uuid4().hex[:12]}")


async def records_of(endpoints: Endpoints, topic: str, referral_id: str, count: int) -> list[Any]:
    """The records of one referral on a topic, once `count` of them are there."""
    found: list[Any] = []

    async def arrived() -> bool:
        nonlocal found
        records = await read_records(
            endpoints, topic, 0, partitions=HOSPITAL_PARTITIONS, timeout=5, linger=1.0
        )
        found = [r for r in records if r.key == referral_id.encode()]
        return len(found) >= count

    await wait_until(arrived, timeout=30, interval=0.3, what=f"{count} records of {referral_id}")
    return found


async def test_metadata_says_what_is_supported(gateway: RunningGateway) -> None:
    async with httpx.AsyncClient() as http:
        answer = await http.get(f"{gateway.url}/metadata")
        smart = await http.get(f"{gateway.url}/.well-known/smart-configuration")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith(FHIR_JSON)
    statement = CapabilityStatement.model_validate(answer.json())
    resources = {r.type: {i.code for i in r.interaction} for r in statement.rest[0].resource}
    assert resources["Task"] == {"create", "read", "update", "search-type"}
    assert smart.json()["token_endpoint"] == gateway.token_url
    assert smart.json()["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]


async def test_a_task_is_published_as_the_hospitals_submission(
    gateway: RunningGateway, ehr_a: httpx.AsyncClient, endpoints: Endpoints
) -> None:
    hospital, _ = hospitals(gateway)
    data = referral(hospital)
    answer = await ehr_a.post("/Task", json=as_json(referral_task(data)))
    assert answer.status_code == 201, answer.text
    task = Task.model_validate(answer.json())
    assert task.status == "requested"
    assert answer.headers["location"].startswith(f"{gateway.url}/Task/{task.id}")
    (record,) = await records_of(endpoints, referrals(hospital), data["referral_id"], 1)
    envelope = Envelope.from_headers(record.headers)
    assert envelope.source == f"hospital/{hospital}"
    assert ReferralSubmitted.model_validate_json(record.value) == ReferralSubmitted.model_validate(
        data
    )
    # A retried POST (same content) answers the same Task and sends nothing more.
    again = await ehr_a.post("/Task", json=as_json(referral_task(data)))
    assert again.status_code == 200
    assert again.json()["id"] == task.id
    # Search by identifier and status.
    found = await ehr_a.get(
        "/Task", params={"identifier": f"https://ehr.example/referral|{data['referral_id']}"}
    )
    assert [e["resource"]["id"] for e in found.json()["entry"]] == [task.id]
    none = await ehr_a.get(
        "/Task", params={"identifier": data["referral_id"], "status": "completed"}
    )
    assert none.json()["entry"] == []


async def test_a_transaction_bundle_and_a_cancelling_put(
    gateway: RunningGateway, ehr_a: httpx.AsyncClient, endpoints: Endpoints
) -> None:
    hospital, _ = hospitals(gateway)
    data = referral(hospital)
    answer = await ehr_a.post("", json=as_json(referral_bundle(data)))
    assert answer.status_code == 200, answer.text
    response = Bundle.model_validate(answer.json())
    assert response.type == "transaction-response"
    task = answer.json()["entry"][0]["resource"]
    task["status"] = "cancelled"
    task["statusReason"] = {
        "coding": [{"system": codes.STATUS_REASON_SYSTEM, "code": "transferred"}]
    }
    put = await ehr_a.put(f"/Task/{task['id']}", json=task)
    assert put.status_code == 200, put.text
    submitted, cancelled = await records_of(endpoints, referrals(hospital), data["referral_id"], 2)
    assert Envelope.from_headers(submitted.headers).type == "carelink.referral.submitted.v1"
    assert ReferralCancelled.model_validate_json(cancelled.value).reason_code == "transferred"


async def test_another_hospitals_token_can_neither_read_nor_create(
    gateway: RunningGateway, ehr_a: httpx.AsyncClient, ehr_b: httpx.AsyncClient
) -> None:
    hospital, _ = hospitals(gateway)
    data = referral(hospital)
    created = await ehr_a.post("/Task", json=as_json(referral_task(data)))
    task_id = created.json()["id"]
    read = await ehr_b.get(f"/Task/{task_id}")
    assert read.status_code == 404
    assert OperationOutcome.model_validate(read.json()).issue[0].code == "not-found"
    assert (await ehr_b.put(f"/Task/{task_id}", json=created.json())).status_code == 404
    searched = await ehr_b.get("/Task", params={"identifier": data["referral_id"]})
    assert searched.json()["entry"] == []
    # b posting a Task whose requester is hospital a.
    forged = await ehr_b.post("/Task", json=as_json(referral_task(referral(hospital))))
    assert forged.status_code == 403
    assert OperationOutcome.model_validate(forged.json()).issue[0].expression == ["Task.requester"]
    # No token, a made-up token.
    async with httpx.AsyncClient(base_url=gateway.url) as anonymous:
        assert (await anonymous.get(f"/Task/{task_id}")).status_code == 401
        bad = await anonymous.get(f"/Task/{task_id}", headers={"Authorization": "Bearer made-up"})
        assert bad.status_code == 401


async def test_a_token_needs_a_fresh_assertion_of_a_known_client(gateway: RunningGateway) -> None:
    hospital, _ = hospitals(gateway)
    form = gateway.clients[hospital].token_form(gateway.token_url)
    async with httpx.AsyncClient() as http:
        first = await http.post(gateway.token_url, data=form)
        replay = await http.post(gateway.token_url, data=form)
        wrong_audience = await http.post(
            gateway.token_url,
            data=gateway.clients[hospital].token_form("https://elsewhere.example/token"),
        )
    assert first.status_code == 200
    assert first.json()["token_type"] == "bearer"
    assert replay.status_code == 401
    assert replay.json()["error"] == "invalid_client"
    assert wrong_audience.status_code == 401


async def test_an_invalid_task_is_an_operation_outcome_with_the_path(
    gateway: RunningGateway, ehr_a: httpx.AsyncClient
) -> None:
    body = as_json(referral_task(referral(hospitals(gateway)[0])))
    body["input"][1]["valueDate"] = "2026-02-31"
    answer = await ehr_a.post("/Task", json=body)
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith(FHIR_JSON)
    outcome = OperationOutcome.model_validate(answer.json())
    assert [i.expression for i in outcome.issue] == [["Task.input[1].valueDate"]]
    broken = await ehr_a.post("/Task", content=b"{not json", headers={"Content-Type": FHIR_JSON})
    assert broken.status_code == 400
    assert OperationOutcome.model_validate(broken.json()).issue[0].code == "structure"


async def test_a_subscription_is_notified_when_an_update_moves_the_task(
    gateway: RunningGateway, ehr_a: httpx.AsyncClient, endpoints: Endpoints
) -> None:
    hospital, _ = hospitals(gateway)
    data = referral(hospital)
    created = await ehr_a.post("/Task", json=as_json(referral_task(data)))
    task_id = created.json()["id"]
    async with receiver() as hook:
        answer = await ehr_a.post("/Subscription", json=as_json(rest_hook_subscription(hook.url)))
        assert answer.status_code == 201, answer.text
        update = StatusChanged(
            referral_id=data["referral_id"],
            case_id=f"case-{uuid.uuid4().hex[:8]}",
            sequence=1,
            status="received",
            business_status="received",
            occurred_at=datetime.now(UTC),
        )
        envelope = Envelope.new(
            source="carelink/outcome", type=STATUS_CHANGED, subject=update.referral_id
        )
        await produce(
            endpoints,
            updates(hospital),
            [
                (
                    update.referral_id.encode(),
                    update.model_dump_json().encode(),
                    envelope.to_headers(),
                )
            ],
        )

        # The endpoint fails first: the delivery is retried (with backoff) until it answers.
        hook.status = 503

        async def attempted() -> bool:
            return hook.attempts >= 2

        async def notified() -> bool:
            return bool(hook.received)

        await wait_until(attempted, timeout=30, interval=0.1, what="two failed deliveries")
        assert hook.received == []
        hook.status = 200
        await wait_until(notified, timeout=30, interval=0.2, what="a notification")
    bundle = Bundle.model_validate(hook.received[0])
    assert bundle.type == "history"
    status = hook.received[0]["entry"][0]["resource"]
    event = next(p for p in status["parameter"] if p["name"] == "notification-event")
    focus = next(p for p in event["part"] if p["name"] == "focus")
    assert focus["valueReference"]["reference"] == f"{gateway.url}/Task/{task_id}"
    # id-only: nothing of the Task, let alone the patient.
    text = json.dumps(hook.received[0], ensure_ascii=False)
    assert "resource" not in hook.received[0]["entry"][1]
    for personal in (data["patient"]["name"], data["patient"]["phone"], data["referral_id"]):
        assert personal not in text
    # The Backport's $status, which every notification names, answers (issue 14).
    number = next(p for p in event["part"] if p["name"] == "event-number")["valueString"]
    queried = await ehr_a.get(f"/Subscription/{answer.json()['id']}/$status")
    assert queried.status_code == 200, queried.text
    current = {p["name"]: p for p in queried.json()["entry"][0]["resource"]["parameter"]}
    assert current["type"]["valueCode"] == "query-status"
    assert current["status"]["valueCode"] == "active"
    assert current["events-since-subscription-start"]["valueString"] == number
    task = (await ehr_a.get(f"/Task/{task_id}")).json()
    assert task["status"] == "received"
    assert task["businessStatus"]["coding"][0]["code"] == "received"
