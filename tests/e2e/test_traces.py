"""Traces across hops, on the real local system: one referral is one trace from the
hospital's record to the hospital's update, across the four services, and no span
carries personal data.

The system here is its own (own embedded broker and PostgreSQL, so no other test's
records reach its consumer groups), with every process exporting by OTLP/HTTP to a
small receiver in this test on 127.0.0.1, as a collector would receive them. The
hospital's record carries the hospital's own `traceparent`; the test asserts that the
spans of all four services for that referral are in the hospital's trace, that the
update on `hospital.<id>.updates` carries it back, and that the referral's personal
values (a Faker ko_KR name, a canary string in the address …) appear nowhere in what
was exported, nor do the values read through the console.
"""

from __future__ import annotations

import gzip
import http.server
import json
import secrets
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from faker import Faker
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from contracts import topics
from services.tools.simulators.hospital_io import UpdatesReader, publish
from services.tools.simulators.referrals import FakeHospital
from services.tools.stack import LocalSystem
from services.tools.stack.deployables import SERVICES

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

HOSPITAL = "police-hospital"
WAIT = 60.0
SERVICE_NAMES = {f"carelink-{name}" for name in SERVICES}


# ------------------------------------------------------------------ the receiver


@dataclass(frozen=True)
class Span:
    service: str
    scope: str
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    attributes: dict[str, Any]


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


@dataclass
class Receiver:
    """What an OTLP/HTTP collector would have received: every request body as sent,
    and the spans decoded from them."""

    bodies: list[bytes] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, body: bytes) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        decoded = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    decoded.append(
                        Span(
                            service=str(resource.get("service.name")),
                            scope=scope_spans.scope.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            name=span.name,
                            attributes={a.key: _value(a.value) for a in span.attributes},
                        )
                    )
        with self.lock:
            self.bodies.append(body)
            self.spans.extend(decoded)

    def snapshot(self) -> tuple[list[bytes], list[Span]]:
        with self.lock:
            return list(self.bodies), list(self.spans)


def _handler(receiver: Receiver) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if self.path == "/v1/traces":
                receiver.take(body)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
            else:
                answer = b""
                self.send_response(404)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, str]]:
    received = Receiver()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(received))
    thread = threading.Thread(target=server.serve_forever, name="otlp-receiver", daemon=True)
    thread.start()
    try:
        yield received, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def traced_system(
    receiver: tuple[Receiver, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalSystem]:
    """The four services and the console, tracing on, on servers of their own."""
    _, endpoint = receiver
    local = LocalSystem(
        tmp_path_factory.mktemp("traced"),
        infrastructure_kind="embedded",
        extra_env={
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_EXPORTER_OTLP_TIMEOUT": "5",
            # Send within a fraction of a second, not the default 5 s.
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "CARELINK_LOG_LEVEL": "INFO",
        },
    )
    try:
        local.start()
        yield local
    finally:
        local.stop()


# ------------------------------------------------------------------ the referral


def _personal_submission(hospital: FakeHospital) -> tuple[dict[str, Any], dict[str, str]]:
    """A valid submission whose personal values are clearly fake and occur nowhere else."""
    faker = Faker("ko_KR")
    canary = f"canary-{uuid.uuid4().hex[:12]}"
    data = hospital.submission(age=79, district="Songpa-gu")
    patient = data["patient"]
    patient["name"] = faker.name()
    patient["phone"] = f"010-{secrets.randbelow(10_000):04d}-{secrets.randbelow(10_000):04d}"
    patient["address"]["street"] = f"{faker.street_address()} {canary}"
    data["social_worker"]["name"] = faker.name()
    data["social_worker"]["email"] = f"msw.{canary}@example.org"
    data["care_precautions"] = f"낙상 위험 {canary}-precaution"
    values = {
        "patient.name": patient["name"],
        "patient.phone": patient["phone"],
        "patient.address.street": patient["address"]["street"],
        "address canary": canary,
        "social_worker.name": data["social_worker"]["name"],
        "social_worker.email": data["social_worker"]["email"],
        "care_precautions": data["care_precautions"],
    }
    return data, values


def _leaks(bodies: list[bytes], spans: list[Span], values: dict[str, str]) -> list[str]:
    """Which personal values occur in what was exported: in the raw protobuf bodies
    (names, attributes, events, statuses, resources alike) or in a decoded span."""
    blob = b"\n".join(bodies)
    text = "\n".join(
        f"{s.name} {json.dumps(s.attributes, ensure_ascii=False, default=str)}" for s in spans
    )
    return [
        name
        for name, value in values.items()
        if value.encode() in blob or value in text or json.dumps(value)[1:-1] in text
    ]


def _console(base: str, path: str, *, token: str | None = None, body: Any = None) -> Any:
    request = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode() if body is not None else None,
        headers={
            "Content-Type": "application/json",
            **({"Authorization": f"Bearer {token}"} if token else {}),
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _wait_for_spans(
    receiver: Receiver, done: Any, *, timeout: float = 30.0
) -> tuple[list[bytes], list[Span]]:
    deadline = time.monotonic() + timeout
    while True:
        bodies, spans = receiver.snapshot()
        if done(spans) or time.monotonic() > deadline:
            return bodies, spans
        time.sleep(0.2)


async def test_one_referral_is_one_trace_across_the_four_services_without_personal_data(
    traced_system: LocalSystem, receiver: tuple[Receiver, str]
) -> None:
    received, _ = receiver
    info = traced_system.info
    assert info is not None
    hospital = FakeHospital(HOSPITAL)
    data, personal = _personal_submission(hospital)
    referral_id = data["referral_id"]
    # The hospital's own trace: carelink continues it.
    trace_id, hospital_span = uuid.uuid4().hex, secrets.token_hex(8)
    record = hospital.submitted(data)
    record.headers.append(("traceparent", f"00-{trace_id}-{hospital_span}-01".encode()))

    async with UpdatesReader(info.kafka_bootstrap, topics.updates(HOSPITAL)) as reader:
        await publish(info.kafka_bootstrap, [record])

        def triaged(seen: dict[str, list[Any]]) -> bool:
            return any(u.data["business_status"] == "triaged" for u in seen[referral_id])

        seen = await reader.wait_for(triaged, timeout=WAIT)
    updates = seen[referral_id]
    case_id = updates[0].data["case_id"]

    # The hospital's updates come back in the hospital's trace (the relay sent the
    # headers its outbox row was written with).
    for update in updates:
        assert update.headers["traceparent"].split("-")[1] == trace_id, update.data["status"]

    # Every service's spans for this referral, in the one trace. Each process exports
    # its spans in batches of its own timing: a service's receive span can arrive a batch
    # before its process span, so the wait is for the process spans themselves.
    def every_service_reported(spans: list[Span]) -> bool:
        processed_by = {
            s.service for s in spans if s.trace_id == trace_id and s.name.endswith(" process")
        }
        sent_update = any(
            s.trace_id == trace_id and s.name == f"{topics.updates(HOSPITAL)} send" for s in spans
        )
        return processed_by >= SERVICE_NAMES and sent_update

    _, spans = _wait_for_spans(received, every_service_reported)
    in_trace = [s for s in spans if s.trace_id == trace_id]
    assert {s.service for s in in_trace} >= SERVICE_NAMES, sorted({s.service for s in spans})
    processed = [s for s in in_trace if s.name.endswith(" process")]
    # The gateways (portal, FHIR gateway) follow the hospital's updates topic as the
    # hospital's side does, and nothing else of this referral.
    gateways = [s for s in processed if s.service not in SERVICE_NAMES]
    assert {s.attributes["messaging.destination.name"] for s in gateways} <= {
        topics.updates(HOSPITAL)
    }
    processed = [s for s in processed if s.service in SERVICE_NAMES]
    assert {s.service for s in processed} == SERVICE_NAMES
    # Intake handled the hospital's record as a child of the hospital's span.
    at_intake = [
        s
        for s in processed
        if s.attributes["messaging.destination.name"] == topics.referrals(HOSPITAL)
    ]
    assert at_intake
    assert {s.parent_id for s in at_intake} == {hospital_span}
    # Every record of this case any service handled was handled in that trace.
    of_case = [s for s in spans if s.attributes.get("carelink.case_id") == case_id]
    assert of_case
    assert {s.trace_id for s in of_case} == {trace_id}
    # The outbox relay's sends, the consumers' receives and the use cases' SQL are in it.
    scopes = {s.scope for s in in_trace}
    assert "opentelemetry.instrumentation.aiokafka" in scopes
    assert "opentelemetry.instrumentation.asyncpg" in scopes
    assert any(s.name == f"{topics.updates(HOSPITAL)} send" for s in in_trace)

    # A coordinator reads the task, personal details included, through the console:
    # the console's request and the services' answers are one trace (httpx carries it).
    base = info.console
    token = _console(base, "/api/login", body={"username": "songpa", "password": "songpa-demo"})[
        "token"
    ]
    queue = _console(base, "/api/queue", token=token)
    [task] = [t for t in queue["tasks"] if t["case_id"] == case_id]
    detail = _console(base, f"/api/tasks/{task['service']}/{task['id']}", token=token)
    assert detail["personal"] is not None  # the canary went through the console

    def console_traced(spans: list[Span]) -> bool:
        requests = [
            s
            for s in spans
            if s.service == "carelink-console"
            and str(s.attributes.get("http.route", "")).startswith("/api/tasks/")
        ]
        wanted = {"carelink-console", "carelink-intake", f"carelink-{task['service']}"}
        return any(
            wanted <= {x.service for x in spans if x.trace_id == r.trace_id} for r in requests
        )

    bodies, spans = _wait_for_spans(received, console_traced)
    assert console_traced(spans)

    # Nothing personal in any span of any process, nor statement parameters.
    assert _leaks(bodies, spans, personal) == []
    assert not [s for s in spans if "db.statement.parameters" in s.attributes]
    # Probes and scrapes (LocalSystem polled every /health/ready until ready) are not traced.
    probes = [
        s.name
        for s in spans
        if any("/health/" in str(v) or "/metrics" in str(v) for v in s.attributes.values())
    ]
    assert probes == []
