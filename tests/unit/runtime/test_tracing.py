"""Trace context across hops, without servers: the `traceparent` an outbox row gets
when it is written, the context the relay sends it under, and the span a consumer
starts from a record's headers. Also: when tracing is on at all, and that exported
spans keep no exception text."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel, ValidationError

from services.lib.runtime import outbox, tracing
from services.lib.runtime.errors import PermanentError
from services.lib.runtime.outbox import OutboxRelay, decode_headers, encode_headers
from services.lib.runtime.pipeline import Pipeline, Record, RetryPolicy

CANARY = "개인정보-canary-7f3a"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
OTHER_TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    """Tracing on, for this test only: carelink's spans go to memory, redacted as
    every real exporter's are."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(tracing._Redacted(exporter)))
    monkeypatch.setattr(tracing, "_provider", provider)
    monkeypatch.setattr(tracing, "_tracer", provider.get_tracer(tracing.SCOPE))
    return exporter


@pytest.fixture
def untraced(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tracing off, as with no OTEL_* setting: the API's no-op tracer."""
    monkeypatch.setattr(tracing, "_provider", None)
    monkeypatch.setattr(tracing, "_tracer", trace.NoOpTracer())


def _record(
    *extra: tuple[str, bytes],
    topic: str = "hospital.police-hospital.referrals",
    source: bytes = b"hospital/police-hospital",
    event_id: bytes = b"ev-1",
    value: bytes = b"{}",
) -> Record:
    return Record(
        topic=topic,
        partition=1,
        offset=7,
        key=b"ref-1",
        value=value,
        headers=(("ce_id", event_id), ("ce_source", source), ("ce_type", b"t.v1"), *extra),
    )


def _traceparent(headers: Sequence[tuple[str, bytes]]) -> list[str]:
    return [value.decode() for name, value in headers if name == "traceparent"]


class _Transaction:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *_: object) -> None:
        return None


class FakeConn:
    """Just enough of asyncpg for the pipeline and the outbox: rows written are kept."""

    def __init__(self) -> None:
        self.outbox: list[tuple[str, list[tuple[str, bytes]]]] = []

    async def execute(self, sql: str, *args: Any) -> str:
        if sql.startswith("INSERT INTO outbox"):
            self.outbox.append((args[0], decode_headers(args[3])))
        elif "INSERT INTO outbox" in sql:  # a batch's rows in one statement (outbox.write_many)
            for topic, headers in zip(args[0], args[3], strict=True):
                self.outbox.append((topic, decode_headers(json.loads(headers))))
        return "OK"

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return True  # the inbox claim: every record is new

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, str]]:
        # The batch's inbox claim (inbox.claim_many): every record is new.
        return [{"source": s, "event_id": e} for s, e in zip(args[1], args[2], strict=True)]

    def transaction(self) -> _Transaction:
        return _Transaction()


class FakePool:
    def __init__(self, conn: FakeConn) -> None:
        self.conn = conn

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[FakeConn]:
        yield self.conn


async def _emit(conn: Any, record: Record) -> None:
    """A use case: one event on care.cases, written through the outbox."""
    await outbox.enqueue(
        conn, topic="care.cases", key=b"case-1", value=b"{}", headers=[("ce_id", b"out")]
    )


def _pipeline(conn: FakeConn, handler: Any = _emit) -> Pipeline:
    return Pipeline(
        service="referral",
        consumer="referral",
        pool=FakePool(conn),  # type: ignore[arg-type]
        handler=handler,
        retry=RetryPolicy(attempts=1, base_delay_s=0.01),
    )


def _hex(value: int, width: int) -> str:
    return format(value, f"0{width}x")


def _ctx(span: ReadableSpan) -> trace.SpanContext:
    ctx = span.get_span_context()
    assert ctx is not None
    return ctx


def _process_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name.endswith(" process")]


# ------------------------------------------------------------------ outbox rows


def test_a_row_written_in_a_span_carries_that_span_as_its_traceparent(
    spans: InMemorySpanExporter,
) -> None:
    tracer = tracing._tracer
    with tracer.start_as_current_span("use case") as span:
        headers = tracing.inject([("ce_id", b"1")])
    ctx = span.get_span_context()
    assert headers[0] == ("ce_id", b"1")
    [traceparent] = _traceparent(headers)
    assert traceparent.split("-")[1:3] == [_hex(ctx.trace_id, 32), _hex(ctx.span_id, 16)]


def test_a_row_written_outside_any_span_gets_no_traceparent(untraced: None) -> None:
    assert tracing.inject([("ce_id", b"1")]) == [("ce_id", b"1")]


def test_a_row_that_has_a_traceparent_keeps_it(spans: InMemorySpanExporter) -> None:
    # A dead letter keeps the original record's headers, its trace context included.
    with tracing._tracer.start_as_current_span("dead letter"):
        headers = tracing.inject([("Traceparent", TRACEPARENT.encode())])
    assert headers == [("Traceparent", TRACEPARENT.encode())]


def test_extract_reads_what_inject_wrote(spans: InMemorySpanExporter) -> None:
    with tracing._tracer.start_as_current_span("use case") as span:
        stored = decode_headers(encode_headers(tracing.inject([])))
    extracted = trace.get_current_span(tracing.extract(stored)).get_span_context()
    assert extracted.trace_id == span.get_span_context().trace_id
    assert extracted.span_id == span.get_span_context().span_id
    assert extracted.is_remote


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [("traceparent", b"not a traceparent")],
        [("traceparent", b"\xff\xfe")],
        [("traceparent", b"00-00000000000000000000000000000000-b7ad6b7169203331-01")],
    ],
    ids=["none", "malformed", "not-utf8", "zero-trace-id"],
)
def test_a_record_without_a_usable_traceparent_starts_a_new_trace(
    headers: list[tuple[str, bytes]],
) -> None:
    assert not trace.get_current_span(tracing.extract(headers)).get_span_context().is_valid


def test_header_names_are_matched_regardless_of_case() -> None:
    ctx = trace.get_current_span(tracing.extract([("TraceParent", TRACEPARENT.encode())]))
    assert _hex(ctx.get_span_context().trace_id, 32) == TRACE_ID


# ------------------------------------------------------------------ the consumer's span


async def test_a_record_is_handled_in_a_child_of_its_trace_and_its_rows_continue_it(
    spans: InMemorySpanExporter,
) -> None:
    conn = FakeConn()
    await _pipeline(conn)(_record(("traceparent", TRACEPARENT.encode())))

    [span] = _process_spans(spans)
    ctx = _ctx(span)
    assert _hex(ctx.trace_id, 32) == TRACE_ID
    assert span.parent is not None
    assert _hex(span.parent.span_id, 16) == PARENT_ID
    assert span.kind is trace.SpanKind.CONSUMER
    assert span.name == "hospital.police-hospital.referrals process"
    assert span.attributes is not None
    assert span.attributes["carelink.outcome"] == "handled"
    [(topic, headers)] = conn.outbox
    assert topic == "care.cases"
    [traceparent] = _traceparent(headers)
    assert traceparent.split("-")[1:3] == [TRACE_ID, _hex(ctx.span_id, 16)]


async def test_without_a_traceparent_the_record_starts_the_trace(
    spans: InMemorySpanExporter,
) -> None:
    conn = FakeConn()
    await _pipeline(conn)(_record())
    [span] = _process_spans(spans)
    assert span.parent is None
    [(_, headers)] = conn.outbox
    assert _traceparent(headers)[0].split("-")[1] == _hex(_ctx(span).trace_id, 32)


async def test_each_record_of_a_batch_continues_its_own_trace(
    spans: InMemorySpanExporter,
) -> None:
    conn = FakeConn()
    await _pipeline(conn).handle_batch(
        [
            _record(("traceparent", TRACEPARENT.encode()), event_id=b"a"),
            _record(("traceparent", OTHER_TRACEPARENT.encode()), event_id=b"b"),
        ]
    )
    processed = _process_spans(spans)
    [batch] = [s for s in spans.get_finished_spans() if s.name == "referral batch"]
    assert [_hex(_ctx(s).trace_id, 32) for s in processed] == [
        TRACE_ID,
        OTHER_TRACEPARENT.split("-")[1],
    ]
    for span in processed:  # each links to the batch's transaction
        assert [link.context.span_id for link in span.links] == [_ctx(batch).span_id]
    assert [_traceparent(h)[0].split("-")[1] for _, h in conn.outbox] == [
        TRACE_ID,
        OTHER_TRACEPARENT.split("-")[1],
    ]


async def test_without_tracing_the_context_is_still_passed_on(untraced: None) -> None:
    # A service with tracing off does not cut the trace of those with it on.
    conn = FakeConn()
    await _pipeline(conn)(_record(("traceparent", TRACEPARENT.encode())))
    [(_, headers)] = conn.outbox
    assert _traceparent(headers) == [TRACEPARENT]


async def test_a_dead_letter_keeps_the_records_trace(spans: InMemorySpanExporter) -> None:
    async def refuses(conn: Any, record: Record) -> None:
        raise PermanentError("patient.name: field required")

    conn = FakeConn()
    await _pipeline(conn, refuses)(_record(("traceparent", TRACEPARENT.encode())))
    [(topic, headers)] = conn.outbox
    assert topic.endswith(".dlq")
    assert _traceparent(headers) == [TRACEPARENT]
    [span] = _process_spans(spans)
    assert span.attributes is not None
    assert span.attributes["carelink.outcome"] == "dead-lettered"
    assert span.status.status_code is trace.StatusCode.ERROR
    assert span.status.description == "patient.name: field required"


def test_span_attributes_are_ids_and_codes(spans: InMemorySpanExporter) -> None:
    ours = _record(
        ("ce_subject", b"case-42"),
        topic="care.cases",
        source=b"carelink/intake",
        value=CANARY.encode(),
    )
    theirs = _record(("ce_subject", CANARY.encode()), value=CANARY.encode())
    for record in (ours, theirs):
        with tracing.consuming(record, "outcome"):
            pass
    first, second = spans.get_finished_spans()
    assert first.attributes is not None
    assert second.attributes is not None
    assert first.attributes["carelink.case_id"] == "case-42"
    assert first.attributes["messaging.destination.name"] == "care.cases"
    assert first.attributes["cloudevents.event_type"] == "t.v1"
    # A hospital's subject is whatever the hospital wrote: not recorded.
    assert "carelink.case_id" not in second.attributes
    assert CANARY not in repr(dict(second.attributes))


# ------------------------------------------------------------------ the relay


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[list[tuple[str, bytes]], int]] = []

    async def send(self, topic: str, *, value: bytes, key: bytes, headers: Any) -> Any:
        current = trace.get_current_span().get_span_context()
        self.sent.append((list(headers), current.trace_id))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


class RelayConn(FakeConn):
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        super().__init__()
        self.rows = rows

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        rows, self.rows = self.rows, []
        return rows

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return 0  # the backlog


async def test_the_relay_sends_the_stored_headers_under_their_context(
    spans: InMemorySpanExporter,
) -> None:
    stored = [("ce_id", b"1"), ("traceparent", TRACEPARENT.encode())]
    rows = [
        {"id": 1, "topic": "care.cases", "key": b"case-1", "value": b"{}", "headers": h}
        for h in (encode_headers(stored), encode_headers([("ce_id", b"2")]))
    ]
    producer = FakeProducer()
    relay = OutboxRelay(service="referral", database_url="", producer=producer)  # type: ignore[arg-type]
    with tracing.untraced():
        await relay._publish_batch(RelayConn(rows))  # type: ignore[arg-type]
    (first_headers, first_trace), (second_headers, second_trace) = producer.sent
    assert first_headers == stored
    assert _hex(first_trace, 32) == TRACE_ID
    assert second_headers == [("ce_id", b"2")]
    assert second_trace == 0  # a row written outside any trace: sent outside one


async def test_the_send_instrumentation_does_not_replace_a_rows_context() -> None:
    # aiokafka's instrumentation appends the send span's traceparent to the headers.
    send_span = "00-0af7651916cd43dd8448eb211c80319c-1111111111111111-01"
    headers = [("ce_id", b"1"), ("traceparent", TRACEPARENT.encode())]
    kwargs: dict[str, Any] = {"headers": [*headers, ("traceparent", send_span.encode())]}
    await tracing._keep_stored_context(trace.INVALID_SPAN, (), kwargs)
    assert kwargs["headers"] == headers
    # Whatever the case of the stored name (a hospital's record, dead-lettered).
    kwargs = {"headers": [("Traceparent", b"x"), ("traceparent", send_span.encode())]}
    await tracing._keep_stored_context(trace.INVALID_SPAN, (), kwargs)
    assert kwargs["headers"] == [("Traceparent", b"x")]
    # A row without one takes the send span's: the trace starts at the relay.
    kwargs = {"headers": [("ce_id", b"2"), ("traceparent", send_span.encode())]}
    await tracing._keep_stored_context(trace.INVALID_SPAN, (), kwargs)
    assert _traceparent(kwargs["headers"]) == [send_span]


# ------------------------------------------------------------------ no personal data


class _Patient(BaseModel):
    age: int


def test_exported_spans_keep_no_exception_text(spans: InMemorySpanExporter) -> None:
    # Another library's instrumentation records exceptions with their message, which can
    # quote a value (asyncpg's DataError, pydantic's input_value).
    provider = tracing._provider
    assert provider is not None
    foreign = provider.get_tracer("opentelemetry.instrumentation.asyncpg")
    with contextlib.suppress(ValueError), foreign.start_as_current_span("INSERT"):
        raise ValueError(f"invalid input for query argument $1: {CANARY!r}")
    with contextlib.suppress(ValidationError), tracing.consuming(_record(), "intake"):
        _Patient.model_validate({"age": CANARY})
    foreign_span, ours = spans.get_finished_spans()
    for span in (foreign_span, ours):
        assert span.status.status_code is trace.StatusCode.ERROR
        assert CANARY not in span.to_json()
    [event] = foreign_span.events
    assert event.name == "exception"
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "ValueError"
    assert set(event.attributes) <= {"exception.type", "exception.escaped"}
    assert ours.status.description is not None
    assert ours.status.description.startswith("_Patient invalid: age:")


# ------------------------------------------------------------------ when tracing is on


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, []),
        ({"OTEL_SERVICE_NAME": "carelink-intake"}, []),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, ["otlp"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": "console, otlp"}, ["console", "otlp"]),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}, []),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, []),
    ],
)
def test_tracing_is_on_only_when_the_otel_settings_ask(
    environ: dict[str, str], expected: list[str]
) -> None:
    assert tracing.exporters_asked(environ) == expected


def test_with_nothing_set_setup_installs_nothing(untraced: None) -> None:
    assert tracing.setup("intake", environ={}) is False
    assert not tracing.enabled()
