"""Traces across hops: OpenTelemetry, configured by the standard `OTEL_*` settings.

One referral is one trace, from the hospital's record to the hospital's update:

- an outbox row gets the W3C `traceparent` (and `tracestate`) of the span that wrote
  it, in its stored headers, in the use case's transaction (`outbox.enqueue` calls
  `inject`);
- the relay sends a row with its stored headers, under the context they hold
  (`continued`): the aiokafka instrumentation's send span joins that trace, and the
  record on the wire keeps the row's context (`_keep_stored_context`), not the relay's;
- the consumer pipeline starts each record's span as a child of the context in the
  record's headers (`consuming`), so everything the use case does (its SQL, the rows
  it writes) is in the same trace.

`setup` runs once per process (a service's `main`, the console's composition root).
With no `OTEL_TRACES_EXPORTER` and no OTLP endpoint set, it installs nothing: the API's
no-op tracer costs a header lookup per record, and even then passes an incoming
`traceparent` on to the rows the record causes (the no-op tracer makes the parent's
context current), so a service without tracing does not cut the others' traces.

No personal data in any span: span names and attributes carry ids and codes (topic,
event type and id, case id), never payloads; the asyncpg instrumentation is told not to
capture statement parameters (carelink's SQL has no literal values); and every exporter
is wrapped so that exception messages and stack traces, and other libraries' status
texts, which may quote a value, never leave the process (`_Redacted`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, MutableSequence, Sequence
from typing import Any, Protocol

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from services.lib.runtime.errors import describe
from services.lib.runtime.logging import get_logger

log = get_logger(__name__)

# Only trace context crosses a hop: never W3C baggage, which could carry anything.
_PROPAGATOR = TraceContextTextMapPropagator()
TRACE_HEADERS = frozenset(_PROPAGATOR.fields)  # traceparent, tracestate
SCOPE = "carelink"
# A proxy: it follows the provider `setup` installs, and is a no-op until then.
_tracer: trace.Tracer = trace.get_tracer(SCOPE)
_provider: TracerProvider | None = None

# What a service's HTTP app does not trace: probes, scrapes and the console's polling.
SERVICE_UNTRACED_URLS = ("/health/", "/metrics", "/v1/queue/fingerprint")


class TracedRecord(Protocol):
    """What the pipeline's records offer (services.lib.runtime.pipeline.Record)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def headers(self) -> tuple[tuple[str, bytes], ...]: ...
    @property
    def event_source(self) -> str: ...
    @property
    def event_id(self) -> str: ...
    def header(self, name: str) -> str | None: ...


# ------------------------------------------------------------------ setup


def exporters_asked(environ: Mapping[str, str]) -> list[str]:
    """The trace exporters the OTEL_* settings ask for; [] means tracing is off.

    Unlike the SDK's own default (`otlp`), nothing set means off: tracing is turned on
    by naming an exporter (`OTEL_TRACES_EXPORTER=otlp` or `console`) or by an OTLP
    endpoint. `OTEL_TRACES_EXPORTER=none` and `OTEL_SDK_DISABLED=true` turn it off.
    """
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    names = [
        name.strip().lower()
        for name in environ.get("OTEL_TRACES_EXPORTER", "").split(",")
        if name.strip()
    ]
    if not names:
        endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        return ["otlp"] if endpoint else []
    return [name for name in names if name != "none"]


def _exporter(name: str, environ: Mapping[str, str]) -> SpanExporter | None:
    if name == "console":
        return ConsoleSpanExporter()
    if name == "otlp":
        protocol = (
            environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
            or "http/protobuf"
        )
        if protocol != "http/protobuf":
            log.warning(
                "only OTLP over HTTP (protobuf) is installed; sending with it",
                protocol=protocol,
            )
        # Endpoint, headers, timeout, compression and certificates: from OTEL_EXPORTER_OTLP_*.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    log.warning("unknown trace exporter in OTEL_TRACES_EXPORTER, ignored", exporter=name)
    return None


def _resource(service: str) -> Resource:
    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win; the default names the deployable.
    detected = Resource.create()
    if str(detected.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        return detected.merge(Resource({SERVICE_NAME: f"carelink-{service}"}))
    return detected


def setup(
    service: str,
    *,
    environ: Mapping[str, str] | None = None,
    exporters: Sequence[SpanExporter] | None = None,
) -> bool:
    """Install the tracer provider and the instrumentations, once per process, when the
    OTEL_* settings (or `exporters`, for tests) ask for traces. Returns whether tracing
    is on. The sampler and the batch processor read their own OTEL_* settings
    (OTEL_TRACES_SAMPLER, OTEL_BSP_*)."""
    global _provider
    if _provider is not None:
        return True
    environ = os.environ if environ is None else environ
    if exporters is None:
        chosen = [_exporter(name, environ) for name in exporters_asked(environ)]
        exporters = [e for e in chosen if e is not None]
    if not exporters:
        return False
    provider = TracerProvider(resource=_resource(service))
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(_Redacted(exporter)))
    trace.set_tracer_provider(provider)
    _provider = provider
    _instrument(provider)
    log.info(
        "tracing on",
        exporters=[type(e).__name__ for e in exporters],
        service_name=provider.resource.attributes.get(SERVICE_NAME),
    )
    return True


def _instrument(provider: TracerProvider) -> None:
    from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor
    from opentelemetry.instrumentation.asyncpg import (  # type: ignore[import-untyped]
        AsyncPGInstrumentor,
    )
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    AIOKafkaInstrumentor().instrument(
        tracer_provider=provider, async_produce_hook=_keep_stored_context
    )
    # Statements only, never their parameters: those are case data.
    untyped: Any = AsyncPGInstrumentor
    untyped(capture_parameters=False).instrument(tracer_provider=provider)
    # The console's calls to the services' APIs: the services' spans join its traces. Its
    # readiness calls are not traced, unless the standard setting says otherwise (the
    # instrumentation reads it from the environment only).
    if not (
        os.environ.get("OTEL_PYTHON_HTTPX_EXCLUDED_URLS")
        or os.environ.get("OTEL_PYTHON_EXCLUDED_URLS")
    ):
        os.environ["OTEL_PYTHON_HTTPX_EXCLUDED_URLS"] = "/health/"
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)


def instrument_app(app: Any, *, untraced_urls: Sequence[str] = SERVICE_UNTRACED_URLS) -> None:
    """Trace a FastAPI app's requests (when tracing is on), except `untraced_urls`
    (regular expressions searched in the URL: probes, scrapes, polling) and those of
    the standard OTEL_PYTHON_FASTAPI_EXCLUDED_URLS / OTEL_PYTHON_EXCLUDED_URLS."""
    if _provider is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    configured = os.environ.get("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS") or os.environ.get(
        "OTEL_PYTHON_EXCLUDED_URLS", ""
    )
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=_provider,
        excluded_urls=",".join(u for u in (*untraced_urls, configured) if u),
        # One span per request; not one more per ASGI message sent or received.
        exclude_spans=["receive", "send"],
    )


def enabled() -> bool:
    return _provider is not None


def shutdown() -> None:
    """Send the spans still queued (bounded by the exporter's timeout) and stop."""
    if _provider is not None:
        _provider.shutdown()


# ------------------------------------------------------------------ propagation


class _HeaderGetter(Getter[Sequence[tuple[str, bytes]]]):
    """Kafka headers as a carrier: names matched case-insensitively, like Record.header;
    a value that is not UTF-8 is no context."""

    def get(self, carrier: Sequence[tuple[str, bytes]], key: str) -> list[str] | None:
        for name, raw in carrier:
            if name.lower() == key:
                try:
                    return [(raw or b"").decode("utf-8")]
                except UnicodeDecodeError:
                    return None
        return None

    def keys(self, carrier: Sequence[tuple[str, bytes]]) -> list[str]:
        return [name for name, _ in carrier]


_GETTER = _HeaderGetter()


def extract(headers: Sequence[tuple[str, bytes]]) -> Context:
    """The trace context in a record's (or an outbox row's) headers; an empty context
    when there is none or it is malformed (a new trace starts there)."""
    return _PROPAGATOR.extract(headers, getter=_GETTER)


def inject(headers: Sequence[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """`headers` plus the current span's context, for an outbox row being written.

    Headers that carry a `traceparent` already keep it (a dead letter keeps the
    original record's). Without a current span nothing is added.
    """
    result = list(headers)
    if any(name.lower() == "traceparent" for name, _ in result):
        return result
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    result.extend((name, value.encode()) for name, value in carrier.items())
    return result


@contextlib.contextmanager
def continued(headers: Sequence[tuple[str, bytes]]) -> Iterator[None]:
    """Make the context stored in `headers` current: the relay sends a row under it, so
    the send span belongs to the trace that wrote the row, not to the relay's loop."""
    if _provider is None:
        yield
        return
    token = otel_context.attach(extract(headers))
    try:
        yield
    finally:
        otel_context.detach(token)


async def _keep_stored_context(span: Span, args: Any, kwargs: dict[str, Any]) -> None:
    """aiokafka's send instrumentation appends its own `traceparent` to the headers; a
    row that has one keeps it (the context it was written under), and only the first
    of each trace header goes on the wire."""
    headers = kwargs.get("headers")
    if not isinstance(headers, MutableSequence):
        return
    seen: set[str] = set()
    kept = []
    for name, value in headers:
        folded = name.lower()
        if folded in TRACE_HEADERS:
            if folded in seen:
                continue
            seen.add(folded)
        kept.append((name, value))
    headers[:] = kept


def untraced() -> contextlib.AbstractContextManager[None]:
    """No instrumentation spans inside: the relay's polling, probes and scrapes are not
    anyone's referral, and would only add a root trace per round."""
    return suppress_instrumentation()


# ------------------------------------------------------------------ spans


@contextlib.contextmanager
def consuming(record: TracedRecord, consumer: str, *, batch: Span | None = None) -> Iterator[Span]:
    """The span of one record's handling, a child of the context in its headers.

    Attributes are ids and codes: the topic, partition and offset, the event's type,
    source and id, and for carelink's own events the case id (their subject). A
    hospital's subject is not recorded: it is whatever the hospital wrote.
    """
    attributes: dict[str, str | int] = {}
    if _provider is not None:  # without tracing, only the context is passed on
        source = record.event_source
        attributes = {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.destination.name": record.topic,
            "messaging.destination.partition.id": str(record.partition),
            "messaging.kafka.offset": record.offset,
            "messaging.consumer.group.name": consumer,
            "messaging.message.id": record.event_id,
            "cloudevents.event_source": source,
            "cloudevents.event_type": record.header("ce_type") or "",
        }
        subject = record.header("ce_subject")
        if subject and source.startswith("carelink/"):
            attributes["carelink.case_id"] = subject
    links = [Link(batch.get_span_context())] if batch is not None else None
    with _tracer.start_as_current_span(
        f"{record.topic} process",
        context=extract(record.headers),
        kind=SpanKind.CONSUMER,
        attributes=attributes,
        links=links,
        # Exception texts may quote a value: `failed` records a safe description instead.
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield span
        except Exception as exc:
            failed(span, exc)
            raise


@contextlib.contextmanager
def handling_batch(consumer: str, size: int) -> Iterator[Span]:
    """The span of a batch's one transaction; each record's span links to it."""
    with _tracer.start_as_current_span(
        f"{consumer} batch",
        kind=SpanKind.INTERNAL,
        attributes={"messaging.batch.message_count": size},
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield span
        except Exception as exc:
            failed(span, exc)
            raise


def failed(span: Span, exc: BaseException) -> None:
    """Mark a span failed with a description safe for logs (no values)."""
    span.set_status(Status(StatusCode.ERROR, describe(exc)))
    span.set_attribute("error.type", type(exc).__name__)


def outcome(name: str, *, error: str | None = None) -> None:
    """What became of the record being handled (handled, duplicate, dead-lettered …),
    on its span; `error` is a description already safe for logs."""
    span = trace.get_current_span()
    span.set_attribute("carelink.outcome", name)
    if error is not None:
        span.set_status(Status(StatusCode.ERROR, error))


def log_ids(span: Span) -> dict[str, str]:
    """The span's trace id (32 hex digits) for the record's log lines, if it has one:
    a log line leads to its trace and back."""
    ctx = span.get_span_context()
    return {"trace_id": format(ctx.trace_id, "032x")} if ctx.is_valid else {}


# ------------------------------------------------------------------ export


_SAFE_EXCEPTION_ATTRIBUTES = ("exception.type", "exception.escaped")


class _Redacted(SpanExporter):
    """Exports spans without the texts other libraries' instrumentations may take from
    an exception (its message and stack trace in the `exception` event, `Type: message`
    as the status description): an asyncpg or pydantic message can quote a value.
    carelink's own spans never record exceptions and describe failures safely."""

    def __init__(self, inner: SpanExporter) -> None:
        self._inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._inner.export([redacted(span) for span in spans])

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._inner.force_flush(timeout_millis)


def redacted(span: ReadableSpan) -> ReadableSpan:
    ours = span.instrumentation_scope is not None and span.instrumentation_scope.name == SCOPE
    risky_status = bool(span.status.description) and not ours
    risky_events = any(event.name == "exception" for event in span.events)
    if not (risky_status or risky_events):
        return span
    events = [
        Event(
            event.name,
            {k: v for k, v in (event.attributes or {}).items() if k in _SAFE_EXCEPTION_ATTRIBUTES},
            event.timestamp,
        )
        if event.name == "exception"
        else event
        for event in span.events
    ]
    status = Status(span.status.status_code) if risky_status else span.status
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=span.attributes,
        events=events,
        links=span.links,
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )
