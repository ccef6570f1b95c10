"""Topics: what the broker has, how far each partition goes, and reading records back.

Reading uses assigned partitions from the beginning, never a consumer group: nothing
to join (slow on Tansu), nothing committed, and the services' groups are untouched.
A scan ends when every partition has reached the end offset the broker reported *and*
nothing more arrives for a short while. The second condition is what makes it right on
the local Tansu broker, whose end offsets lag behind after batched produce.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.tools.cli.connect import HINT, ConnectError, System
from services.tools.cli.output import Progress

CLIENT_ID = "carelink-cli"
# A poll this long with nothing new means the partitions are drained.
IDLE_S = 0.5
# How long to keep polling when the broker's end offsets were never reached (they may be wrong).
MAX_IDLE_S = 2.0


@dataclass(frozen=True)
class Message:
    """One record as read back; the value is kept for the commands that need it."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    def header(self, name: str) -> str | None:
        for header_name, raw in self.headers:
            if header_name.lower() == name:
                return decode_text(raw)
        return None

    @property
    def key_text(self) -> str | None:
        return None if self.key is None else decode_text(self.key)

    @property
    def size(self) -> int:
        return len(self.value or b"")

    @property
    def timestamp(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)

    @property
    def coordinates(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"


def decode_text(raw: bytes | None) -> str:
    """UTF-8 text, or `0x…` hex when the bytes are not UTF-8."""
    if raw is None:
        return ""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return "0x" + raw.hex()


@dataclass(frozen=True)
class ScanResult:
    messages: list[Message]
    # False when the timeout cut the scan short.
    complete: bool


@dataclass(frozen=True)
class TopicFigures:
    topic: str
    partitions: int
    end_offsets: list[int]
    total: int
    rate_per_s: float

    def as_json(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partitions": self.partitions,
            "end_offsets": self.end_offsets,
            "total": self.total,
            "rate_per_s": round(self.rate_per_s, 2),
        }


def is_internal(topic: str) -> bool:
    return topic.startswith("__")


@contextlib.asynccontextmanager
async def admin_client(system: System) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(**system.kafka_options(), client_id=CLIENT_ID)
    try:
        await admin.start()
    except Exception as exc:
        await _close_quietly(admin.close())
        raise unreachable(system, exc) from exc
    try:
        yield admin
    finally:
        await _close_quietly(admin.close())


@contextlib.asynccontextmanager
async def reader(system: System) -> AsyncIterator[AIOKafkaConsumer]:
    """A consumer without a group, for reading and for offsets."""
    consumer = AIOKafkaConsumer(
        **system.kafka_options(),
        client_id=CLIENT_ID,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
    )
    try:
        await consumer.start()
    except Exception as exc:
        await _close_quietly(consumer.stop())
        raise unreachable(system, exc) from exc
    try:
        yield consumer
    finally:
        await _close_quietly(consumer.stop())


def unreachable(system: System, exc: BaseException) -> ConnectError:
    return ConnectError(
        f"cannot reach the broker at {system.kafka_bootstrap} (from {system.source}): "
        f"{type(exc).__name__}: {exc}; {HINT}"
    )


async def topic_partitions(consumer: AIOKafkaConsumer, topics: Sequence[str]) -> dict[str, int]:
    """Partition count of each named topic that exists (missing ones are left out)."""
    cluster = await _metadata(consumer)
    counts: dict[str, int] = {}
    for topic in topics:
        partitions = cluster.partitions_for_topic(topic)
        if partitions:
            counts[topic] = len(partitions)
    return counts


async def all_topics(consumer: AIOKafkaConsumer) -> list[str]:
    cluster = await _metadata(consumer)
    return sorted(str(t) for t in cluster.topics() if not is_internal(str(t)))


async def _metadata(consumer: AIOKafkaConsumer) -> Any:
    # Fresh metadata for every topic; the consumer's own cache only knows assigned ones.
    return await consumer._client.fetch_all_metadata()


async def end_offsets(
    consumer: AIOKafkaConsumer, partitions: Sequence[TopicPartition]
) -> dict[TopicPartition, int]:
    if not partitions:
        return {}
    offsets = await consumer.end_offsets(list(partitions))
    return {tp: int(offset) for tp, offset in offsets.items()}


async def beginning_offsets(
    consumer: AIOKafkaConsumer, partitions: Sequence[TopicPartition]
) -> dict[TopicPartition, int]:
    if not partitions:
        return {}
    offsets = await consumer.beginning_offsets(list(partitions))
    return {tp: int(offset) for tp, offset in offsets.items()}


def partitions_of(counts: dict[str, int]) -> list[TopicPartition]:
    return [TopicPartition(t, p) for t, n in sorted(counts.items()) for p in range(n)]


async def scan(
    system: System,
    topics: Sequence[str],
    *,
    keep: Callable[[Message], bool] | None = None,
    timeout: float = 30.0,
) -> ScanResult:
    """Every record of these topics (those that exist) from the beginning, filtered by `keep`."""
    async with reader(system) as consumer:
        counts = await topic_partitions(consumer, topics)
        return await scan_with(consumer, counts, keep=keep, timeout=timeout)


async def scan_with(
    consumer: AIOKafkaConsumer,
    counts: dict[str, int],
    *,
    keep: Callable[[Message], bool] | None = None,
    timeout: float = 30.0,
) -> ScanResult:
    partitions = partitions_of(counts)
    if not partitions:
        return ScanResult([], True)
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    ends = await end_offsets(consumer, partitions)
    kept: list[Message] = []
    seen = 0
    progress = Progress(f"scanning {len(counts)} topics", enabled=len(counts) > 1)
    progress.update("0 records read")
    deadline = time.monotonic() + timeout
    idle_since: float | None = None
    complete = True
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=int(IDLE_S * 1000), max_records=5000)
            for records in batch.values():
                for record in records:
                    seen += 1
                    message = _message(record)
                    if keep is None or keep(message):
                        kept.append(message)
            now = time.monotonic()
            if batch:
                idle_since = None
                progress.update(f"{seen} records read")
            else:
                idle_since = idle_since or now
                if now - idle_since >= MAX_IDLE_S or await _at_end(consumer, ends):
                    break
            if now > deadline:
                complete = False
                break
    finally:
        progress.close()
    return ScanResult(kept, complete)


async def fetch_one(
    system: System, topic: str, partition: int, offset: int, *, timeout: float = 10.0
) -> Message | None:
    """The record at exactly this position, or None if there is none."""
    async with reader(system) as consumer:
        counts = await topic_partitions(consumer, [topic])
        if partition >= counts.get(topic, 0) or partition < 0 or offset < 0:
            return None
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, offset)
        deadline = time.monotonic() + timeout
        idle_since: float | None = None
        while time.monotonic() < deadline:
            batch = await consumer.getmany(tp, timeout_ms=int(IDLE_S * 1000), max_records=100)
            records = batch.get(tp, [])
            for record in records:
                if record.offset == offset:
                    return _message(record)
                if record.offset > offset:
                    return None
            if records:
                idle_since = None
                continue
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since >= MAX_IDLE_S:
                return None
        return None


async def topic_figures(system: System, *, interval: float) -> list[TopicFigures]:
    """Partition counts and end offsets, sampled twice `interval` seconds apart for a rate."""
    async with admin_client(system) as admin:
        described = await admin.describe_topics()
    counts = {
        str(t["topic"]): len(t["partitions"])
        for t in described
        if not t.get("is_internal") and not is_internal(str(t["topic"])) and t["error_code"] == 0
    }
    partitions = partitions_of(counts)
    async with reader(system) as consumer:
        first = await end_offsets(consumer, partitions)
        started = time.monotonic()
        await asyncio.sleep(max(0.0, interval))
        second = await end_offsets(consumer, partitions)
        elapsed = max(time.monotonic() - started, 1e-6)
    return figures_from(counts, first, second, elapsed)


def figures_from(
    counts: dict[str, int],
    first: dict[TopicPartition, int],
    second: dict[TopicPartition, int],
    elapsed_s: float,
) -> list[TopicFigures]:
    figures = []
    for topic, n in sorted(counts.items()):
        ends = [second.get(TopicPartition(topic, p), 0) for p in range(n)]
        before = sum(first.get(TopicPartition(topic, p), 0) for p in range(n))
        total = sum(ends)
        rate = max(0.0, (total - before) / elapsed_s) if elapsed_s > 0 else 0.0
        figures.append(TopicFigures(topic, n, ends, total, rate))
    return figures


def figures_table_rows(figures: Sequence[TopicFigures]) -> list[list[Any]]:
    return [
        [f.topic, f.partitions, " ".join(str(e) for e in f.end_offsets), f.total, f.rate_per_s]
        for f in figures
    ]


async def _at_end(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return False
    return True


def _message(record: Any) -> Message:
    return Message(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        timestamp_ms=int(record.timestamp or 0),
        key=record.key,
        value=record.value,
        headers=tuple((str(n), bytes(v or b"")) for n, v in record.headers or ()),
    )


async def _close_quietly(closing: Any) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(closing, 10)
