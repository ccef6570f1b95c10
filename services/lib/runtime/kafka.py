"""Kafka clients built from settings: the FastStream broker, the relay's
producer, topic creation, and the one subscriber each service has."""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage

from contracts.topics import TopicSpec
from services.lib.runtime.logging import get_logger
from services.lib.runtime.pipeline import Record
from services.lib.runtime.settings import KafkaSettings

log = get_logger(__name__)

_TOPIC_ALREADY_EXISTS = 36


def client_options(settings: KafkaSettings) -> dict[str, Any]:
    """Connection options shared by every aiokafka client: address and security."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap.split(","),
        "security_protocol": settings.security_protocol,
    }
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(
            cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None
        )
        if settings.ssl_certfile:
            context.load_cert_chain(
                str(settings.ssl_certfile),
                str(settings.ssl_keyfile) if settings.ssl_keyfile else None,
            )
        options["ssl_context"] = context
    if settings.security_protocol.startswith("SASL"):
        options["sasl_mechanism"] = settings.sasl_mechanism or "SCRAM-SHA-512"
        options["sasl_plain_username"] = settings.sasl_username
        options["sasl_plain_password"] = (
            settings.sasl_password.get_secret_value() if settings.sasl_password else None
        )
    return options


def make_producer(settings: KafkaSettings, *, client_id: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        **client_options(settings),
        client_id=client_id,
        acks="all",
        enable_idempotence=settings.enable_idempotence,
        linger_ms=5,
        max_batch_size=256 * 1024,
        max_request_size=settings.max_record_bytes + 64 * 1024,
    )


def make_broker(settings: KafkaSettings, *, client_id: str, logger: Any) -> KafkaBroker:
    options = client_options(settings)
    options.pop("security_protocol", None)
    options.pop("sasl_mechanism", None)
    options.pop("sasl_plain_username", None)
    options.pop("sasl_plain_password", None)
    ssl_context = options.pop("ssl_context", None)
    return KafkaBroker(
        options.pop("bootstrap_servers"),
        security=_faststream_security(settings, ssl_context),
        client_id=client_id,
        logger=logger,
        enable_idempotence=settings.enable_idempotence,
    )


def _faststream_security(settings: KafkaSettings, ssl_context: ssl.SSLContext | None) -> Any:
    from faststream.security import (
        BaseSecurity,
        SASLPlaintext,
        SASLScram256,
        SASLScram512,
    )

    if not settings.security_protocol.startswith("SASL"):
        return BaseSecurity(ssl_context=ssl_context) if ssl_context else None
    password = settings.sasl_password.get_secret_value() if settings.sasl_password else ""
    username = settings.sasl_username or ""
    mechanism = settings.sasl_mechanism or "SCRAM-SHA-512"
    cls = {"SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512, "PLAIN": SASLPlaintext}
    return cls[mechanism](username=username, password=password, ssl_context=ssl_context)


async def ensure_topics(settings: KafkaSettings, specs: Sequence[TopicSpec]) -> list[str]:
    """Create the topics that are missing, as declared; returns those created.

    Each topic gets its partitions and replication factor, and its `min.insync.replicas`
    and `retention.ms` as topic configs (`TopicSpec.configs`). Topics that exist are left
    as they are: this never alters a live topic (`python -m services.lib.runtime.topics
    --check` reports the ones that differ from the catalogue). Nothing at all happens with
    `create_topics` off, where the platform declares the topics (Strimzi `KafkaTopic`).
    """
    if not settings.create_topics:
        log.info("topics are declared by the platform; not creating any", topics=len(specs))
        return []
    admin = AIOKafkaAdminClient(**client_options(settings), client_id="carelink-topics")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        if not missing:
            return []
        response = await admin.create_topics([new_topic(spec) for spec in missing])
        created = []
        for name, code, message in _topic_errors(response):
            if code == 0:
                created.append(name)
            elif code != _TOPIC_ALREADY_EXISTS:  # another instance won the race: fine
                raise RuntimeError(f"could not create topic {name}: {message} (error {code})")
        if created:
            log.info("topics created", topics=created)
        return created
    finally:
        await admin.close()


def new_topic(spec: TopicSpec) -> NewTopic:
    """The CreateTopics request for one declared topic."""
    return NewTopic(
        spec.name, spec.partitions, spec.replication_factor, topic_configs=spec.configs()
    )


def _topic_errors(response: Any) -> list[tuple[str, int, str | None]]:
    return [(err[0], err[1], err[2] if len(err) > 2 else None) for err in response.topic_errors]


async def _raw_body(message: StreamMessage[Any]) -> Any:
    # No decoding: a record that is not JSON must reach our code (to be rejected or
    # dead-lettered), not fail inside FastStream's decoder. Handlers read raw records.
    return message.body


def _utf8(value: bytes | None) -> bool:
    try:
        (value or b"").decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _sanitised(record: Any) -> Any:
    return dataclasses.replace(
        record, headers=[(n, v if _utf8(v) else b"") for n, v in record.headers or ()]
    )


async def _lenient_parser(record: Any, original: Callable[[Any], Awaitable[Any]]) -> Any:
    # FastStream decodes every header as UTF-8 and fails before our handler runs, after
    # which the next ack would commit past the record: a hospital's record with a broken
    # header would vanish. Blank such headers for FastStream only; the handler reads the
    # original records, bytes intact, and rejects or dead-letters them.
    if isinstance(record, tuple):
        message = await original(tuple(_sanitised(r) for r in record))
    else:
        message = await original(_sanitised(record))
    message.raw_message = record
    return message


def _to_record(raw: Any) -> Record:
    return Record(
        topic=raw.topic,
        partition=raw.partition,
        offset=raw.offset,
        key=raw.key,
        value=raw.value or b"",
        headers=tuple(raw.headers or ()),
    )


def subscribe(
    broker: KafkaBroker,
    topics: Sequence[str],
    *,
    group_id: str,
    settings: KafkaSettings,
    handle: Callable[[Record], Awaitable[None]],
    handle_batch: Callable[[list[Record]], Awaitable[None]] | None = None,
    batch_size: int = 1,
) -> None:
    """The service's one subscriber: explicit group, commit only after the handler.

    NACK_ON_ERROR: when the pipeline gives up on a transient fault it raises, and
    FastStream seeks back to the earliest unhandled record (per partition, for a
    batch) instead of committing past it. With `handle_batch` and `batch_size` > 1,
    records come in batches handled in one transaction each: that is where the
    throughput is.
    """
    if handle_batch is not None and batch_size > 1:

        @broker.subscriber(
            *topics,
            batch=True,
            max_records=batch_size,
            batch_timeout_ms=50,
            group_id=group_id,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            auto_offset_reset="earliest",
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=settings.heartbeat_interval_ms,
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            decoder=_raw_body,
            parser=_lenient_parser,
        )
        async def on_batch(body: Any, message: KafkaMessage) -> None:
            await handle_batch([_to_record(raw) for raw in message.raw_message])

    else:

        @broker.subscriber(
            *topics,
            max_poll_records=100,
            group_id=group_id,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            auto_offset_reset="earliest",
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=settings.heartbeat_interval_ms,
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            decoder=_raw_body,
            parser=_lenient_parser,
        )
        async def on_record(body: Any, message: KafkaMessage) -> None:
            await handle(_to_record(message.raw_message))
