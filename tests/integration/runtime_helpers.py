"""Shared helpers for the services/lib/runtime integration tests (real broker, real PostgreSQL).

Every test makes its own database and topics with random names instead of cleaning up.
Records are read back with an AIOKafkaConsumer on assigned partitions from the beginning
(no consumer group: the local Tansu broker is slow at joins and its end offsets are not
reliable), so every read is bounded by a count and a timeout, never by an end offset.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from contracts.topics import TopicSpec, dead_letters
from services.lib.runtime import db, kafka
from services.lib.runtime.outbox import OutboxRelay
from services.lib.runtime.pipeline import Record
from services.lib.runtime.settings import KafkaSettings
from services.tools.localinfra import Endpoints, ensure_databases

# FastStream subscribers join a group: short sessions keep Tansu's join wait short.
SUBSCRIBER_KAFKA = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 500}

# A scratch table handlers write their state to, applied after the runtime's own migrations.
STATE_SQL = """CREATE TABLE state (
    event_id text PRIMARY KEY,
    value    bytea NOT NULL,
    at       timestamptz NOT NULL DEFAULT now()
);
"""


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def kafka_settings(endpoints: Endpoints, *, subscriber: bool = False) -> KafkaSettings:
    extra: dict[str, Any] = SUBSCRIBER_KAFKA if subscriber else {}
    return KafkaSettings(bootstrap=endpoints.kafka_bootstrap, **extra)


async def new_database(endpoints: Endpoints) -> str:
    """A fresh, empty database; returns its URL."""
    name = unique("it")
    urls = await ensure_databases(endpoints.postgres_url, [name])
    return urls[name]


async def migrated_database(endpoints: Endpoints, tmp_path: Path) -> str:
    """A fresh database with the runtime's migrations and a scratch `state` table."""
    url = await new_database(endpoints)
    scratch = tmp_path / unique("scratch_migrations")
    scratch.mkdir()
    (scratch / "0001_state.sql").write_text(STATE_SQL, encoding="utf-8")
    conn = await asyncpg.connect(url)
    try:
        await db.migrate(
            conn, db.load_migrations([("runtime", db.RUNTIME_MIGRATIONS), ("scratch", scratch)])
        )
    finally:
        await conn.close()
    return url


@contextlib.asynccontextmanager
async def pool_for(url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await db.create_pool(url, min_size=1, max_size=5)
    try:
        yield pool
    finally:
        await asyncio.wait_for(pool.close(), 10)


async def new_topic(endpoints: Endpoints, partitions: int = 1, *, with_dlq: bool = False) -> str:
    """A fresh topic (and its `<topic>.dlq` when asked) created up front."""
    topic = unique("it").replace("_", "-")
    specs = [TopicSpec(topic, partitions)]
    if with_dlq:
        specs.append(TopicSpec(dead_letters(topic), 1))
    created = await kafka.ensure_topics(kafka_settings(endpoints), specs)
    assert sorted(created) == sorted(spec.name for spec in specs)
    return topic


async def produce(
    endpoints: Endpoints,
    topic: str,
    records: Sequence[tuple[bytes | None, bytes, Sequence[tuple[str, bytes]]]],
    *,
    partition: int | None = None,
) -> None:
    """Publish (key, value, headers) records in order, as a hospital or another service would."""
    producer = kafka.make_producer(kafka_settings(endpoints), client_id=unique("it-producer"))
    await producer.start()
    try:
        for key, value, headers in records:
            await asyncio.wait_for(
                producer.send_and_wait(
                    topic, value=value, key=key, headers=list(headers), partition=partition
                ),
                20,
            )
    finally:
        await producer.stop()


async def read_records(
    endpoints: Endpoints,
    topic: str,
    count: int,
    *,
    partitions: int = 1,
    timeout: float = 15.0,
    linger: float = 0.0,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of `topic` from the beginning, once `count` have arrived.

    Fails when fewer than `count` arrive within `timeout`. With `linger`, keeps reading
    that long after `count` arrived so that extra records (duplicates) are seen too.
    Records are returned per partition in offset order, partitions in order.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=endpoints.kafka_bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        assigned = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        deadline = time.monotonic() + timeout
        stop_at: float | None = None
        while True:
            now = time.monotonic()
            if stop_at is None and len(records) >= count:
                stop_at = now + linger
            if stop_at is not None and now >= stop_at:
                break
            if stop_at is None and now >= deadline:
                raise AssertionError(
                    f"{topic}: {len(records)} of {count} records within {timeout} s"
                )
            batches = await consumer.getmany(timeout_ms=200)
            for batch in batches.values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return sorted(records, key=lambda r: (r.partition, r.offset))


async def committed_offset(endpoints: Endpoints, group_id: str, tp: TopicPartition) -> int | None:
    """The group's committed offset of one named partition (no join: nothing subscribes)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=endpoints.kafka_bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        offset: int | None = await asyncio.wait_for(consumer.committed(tp), 10)
        return offset
    finally:
        await consumer.stop()


async def wait_until(
    condition: Callable[[], Awaitable[bool]],
    *,
    timeout: float,
    interval: float = 0.05,
    what: str = "condition",
) -> float:
    """Poll `condition` until it holds; returns the seconds it took, fails after `timeout`."""
    started = time.monotonic()
    while not await condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what} did not hold within {timeout} s")
        await asyncio.sleep(interval)
    return time.monotonic() - started


class RunningRelay:
    """An OutboxRelay with its own producer, running as a task until `stop()`."""

    def __init__(self, relay: OutboxRelay, producer: AIOKafkaProducer) -> None:
        self.relay = relay
        self.producer = producer
        self.stop_event = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self._stopped = False

    async def start(self) -> None:
        await asyncio.wait_for(self.producer.start(), 20)
        self.task = asyncio.create_task(self.relay.run(self.stop_event))

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.stop_event.set()
        try:
            if self.task is not None:
                await asyncio.wait_for(self.task, 20)
        finally:
            await asyncio.wait_for(self.producer.stop(), 20)

    async def wait_active(self, timeout: float = 10.0) -> None:
        async def active() -> bool:
            assert self.task is not None
            assert not self.task.done(), "relay task ended"
            return self.relay.active

        await wait_until(active, timeout=timeout, what="relay active")


def make_relay(
    endpoints: Endpoints, url: str, *, poll_interval_s: float = 0.5, batch_size: int = 500
) -> RunningRelay:
    producer = kafka.make_producer(kafka_settings(endpoints), client_id=unique("it-relay"))
    relay = OutboxRelay(
        service="it",
        database_url=url,
        producer=producer,
        batch_size=batch_size,
        poll_interval_s=poll_interval_s,
    )
    return RunningRelay(relay, producer)


@contextlib.asynccontextmanager
async def running_relay(
    endpoints: Endpoints, url: str, *, poll_interval_s: float = 0.5, batch_size: int = 500
) -> AsyncIterator[RunningRelay]:
    running = make_relay(endpoints, url, poll_interval_s=poll_interval_s, batch_size=batch_size)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


@contextlib.asynccontextmanager
async def running_subscriber(
    endpoints: Endpoints,
    topics: Sequence[str],
    *,
    group_id: str,
    handle: Callable[[Record], Awaitable[None]],
    handle_batch: Callable[[list[Record]], Awaitable[None]] | None = None,
    batch_size: int = 1,
) -> AsyncIterator[None]:
    """A FastStream broker with the service's one subscriber (kafka.subscribe) on `topics`."""
    settings = kafka_settings(endpoints, subscriber=True)
    broker = kafka.make_broker(settings, client_id=unique("it-broker"), logger=None)
    kafka.subscribe(
        broker,
        topics,
        group_id=group_id,
        settings=settings,
        handle=handle,
        handle_batch=handle_batch,
        batch_size=batch_size,
    )
    await asyncio.wait_for(broker.start(), 30)
    try:
        yield
    finally:
        await asyncio.wait_for(broker.stop(), 20)


def ce_headers(event_id: str, *extra: tuple[str, bytes]) -> tuple[tuple[str, bytes], ...]:
    # An event is identified by (ce_source, ce_id): without a source, only by its offset.
    return (
        ("ce_id", event_id.encode()),
        ("ce_source", b"it/test"),
        ("ce_type", b"it.test.v1"),
        *extra,
    )


async def outbox_rows(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    async with pool.acquire() as conn:
        rows: list[asyncpg.Record] = await conn.fetch(
            "SELECT id, topic, key, value, headers, published_at FROM outbox ORDER BY id"
        )
    return rows


async def inbox_rows(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    async with pool.acquire() as conn:
        rows: list[asyncpg.Record] = await conn.fetch(
            "SELECT consumer, event_id, status FROM inbox ORDER BY consumer, event_id"
        )
    return rows


async def state_rows(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    async with pool.acquire() as conn:
        rows: list[asyncpg.Record] = await conn.fetch(
            "SELECT event_id, value FROM state ORDER BY at, event_id"
        )
    return rows
