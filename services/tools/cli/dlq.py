"""Dead letters: list them, show one, replay them to their source topic.

A dead letter's value is the original record and may hold personal data (a
hospital's referral): it is never listed and shown only on request.

Replay republishes the original key, value and headers (without the `carelink_dlq_*`
ones) to the source topic and partition, marked with `carelink_replay`, which lets
the inbox handle a dead-lettered event again while ordinary redeliveries stay
duplicates. Every replay is recorded in `carelink.dlq.replays` (one partition, keyed
by the dead letter's coordinates, compacted where the broker supports it) so the same
dead letter is not replayed twice by accident. The record is written after the broker
acknowledged the replay: a crash in between can at worst replay once more, which the
inbox absorbs for every event that has a `ce_id`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import NewTopic

from services.lib.runtime.deadletter import (
    CONSUMER_HEADER,
    ERROR_HEADER,
    FAILED_AT_HEADER,
    REPLAY_HEADER,
    SOURCE_OFFSET_HEADER,
    SOURCE_PARTITION_HEADER,
    SOURCE_TOPIC_HEADER,
)
from services.lib.runtime.settings import KafkaSettings
from services.tools.cli.connect import System
from services.tools.cli.topics import (
    CLIENT_ID,
    Message,
    admin_client,
    all_topics,
    decode_text,
    fetch_one,
    reader,
    scan_with,
    topic_partitions,
)

DLQ_SUFFIX = ".dlq"
DLQ_HEADER_PREFIX = "carelink_dlq_"
REPLAYS_TOPIC = "carelink.dlq.replays"
_TOPIC_ALREADY_EXISTS = 36


@dataclass(frozen=True)
class DeadLetter:
    message: Message

    @property
    def id(self) -> str:
        """`dlq-topic:partition:offset`: what identifies it in the replay record."""
        return self.message.coordinates

    @property
    def source_topic(self) -> str | None:
        return self.message.header(SOURCE_TOPIC_HEADER)

    @property
    def source_partition(self) -> int | None:
        return _int(self.message.header(SOURCE_PARTITION_HEADER))

    @property
    def source_offset(self) -> int | None:
        return _int(self.message.header(SOURCE_OFFSET_HEADER))

    def summary(self, replayed: bool | None = None) -> dict[str, Any]:
        """Everything `dlq list` shows; never the value."""
        m = self.message
        row: dict[str, Any] = {
            "topic": m.topic,
            "partition": m.partition,
            "offset": m.offset,
            "source_topic": self.source_topic,
            "source_partition": self.source_partition,
            "source_offset": self.source_offset,
            "error": m.header(ERROR_HEADER),
            "consumer": m.header(CONSUMER_HEADER),
            "failed_at": m.header(FAILED_AT_HEADER),
            "ce_type": m.header("ce_type"),
            # Set when this dead letter is a replayed one that failed again.
            "replay_of": m.header(REPLAY_HEADER),
            "key": m.key_text,
            "size": m.size,
        }
        if replayed is not None:
            row["replayed"] = replayed
        return row


def is_dlq(topic: str) -> bool:
    return topic.endswith(DLQ_SUFFIX)


def replay_id(topic: str, partition: int, offset: int) -> str:
    return f"{topic}:{partition}:{offset}"


def replay_headers(
    headers: Iterable[tuple[str, bytes]], dead_letter_id: str
) -> list[tuple[str, bytes]]:
    """The original headers, without the dead-letter ones or an earlier replay mark,
    plus `carelink_replay` naming the dead letter."""
    kept = [
        (name, value)
        for name, value in headers
        if not name.lower().startswith(DLQ_HEADER_PREFIX) and name.lower() != REPLAY_HEADER
    ]
    return [*kept, (REPLAY_HEADER, dead_letter_id.encode())]


def replay_record_value(
    dead_letter_id: str, topic: str, partition: int, offset: int, *, forced: bool
) -> bytes:
    return json.dumps(
        {
            "dead_letter": dead_letter_id,
            "replayed_at": datetime.now(UTC).isoformat(),
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "forced": forced,
        }
    ).encode()


def headers_json(headers: Iterable[tuple[str, bytes]]) -> list[dict[str, str]]:
    """Headers as a list (names may repeat); non-UTF-8 values as 0x-hex."""
    return [{"name": name, "value": decode_text(value)} for name, value in headers]


async def dlq_topics(system: System, only: str | None = None) -> list[str]:
    async with reader(system) as consumer:
        topics = [t for t in await all_topics(consumer) if is_dlq(t)]
    if only is not None:
        wanted = only if is_dlq(only) else only + DLQ_SUFFIX
        topics = [t for t in topics if t == wanted]
    return topics


async def read_dead_letters(
    system: System, topics: Sequence[str], *, timeout: float
) -> tuple[list[DeadLetter], bool]:
    async with reader(system) as consumer:
        counts = await topic_partitions(consumer, topics)
        result = await scan_with(consumer, counts, timeout=timeout)
    return [DeadLetter(m) for m in result.messages], result.complete


async def replayed_ids(system: System, *, timeout: float) -> dict[str, dict[str, Any]]:
    """Dead letters already replayed, by id; the last record of a key wins (as compaction)."""
    async with reader(system) as consumer:
        counts = await topic_partitions(consumer, [REPLAYS_TOPIC])
        result = await scan_with(consumer, counts, timeout=timeout)
    done: dict[str, dict[str, Any]] = {}
    for m in result.messages:
        key = m.key_text
        if not key:
            continue
        if m.value is None:  # a tombstone: forgotten, may be replayed again
            done.pop(key, None)
            continue
        try:
            done[key] = dict(json.loads(m.value))
        except (ValueError, TypeError):
            done[key] = {}
    return done


async def list_dead_letters(
    system: System, *, topic: str | None, timeout: float
) -> tuple[list[dict[str, Any]], bool]:
    topics = await dlq_topics(system, topic)
    letters, complete = await read_dead_letters(system, topics, timeout=timeout)
    done = await replayed_ids(system, timeout=timeout)
    return [d.summary(replayed=d.id in done) for d in letters], complete


async def show_dead_letter(
    system: System, topic: str, partition: int, offset: int, *, show_value: bool, timeout: float
) -> dict[str, Any] | None:
    message = await fetch_one(system, topic, partition, offset, timeout=timeout)
    if message is None:
        return None
    shown = DeadLetter(message).summary()
    shown["timestamp"] = message.timestamp.isoformat()
    shown["headers"] = headers_json(message.headers)
    if show_value:
        shown.update(value_json(message.value))
    return shown


def value_json(value: bytes | None) -> dict[str, Any]:
    if value is None:
        return {"value": None, "value_encoding": None}
    try:
        return {"value": value.decode("utf-8"), "value_encoding": "utf-8"}
    except UnicodeDecodeError:
        return {"value": value.hex(), "value_encoding": "hex"}


async def ensure_replays_topic(system: System) -> None:
    async with admin_client(system) as admin:
        if REPLAYS_TOPIC in set(await admin.list_topics()):
            return
        response = await admin.create_topics(
            [NewTopic(REPLAYS_TOPIC, 1, 1, topic_configs={"cleanup.policy": "compact"})]
        )
        for _name, code, *rest in response.topic_errors:
            if code not in (0, _TOPIC_ALREADY_EXISTS):
                message = rest[0] if rest else ""
                raise RuntimeError(f"could not create {REPLAYS_TOPIC}: {message} (error {code})")


@dataclass(frozen=True)
class ReplayOutcome:
    dead_letter: str
    action: str  # replayed | skipped | would-replay | would-skip | failed
    source_topic: str | None
    partition: int | None = None
    offset: int | None = None
    detail: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "dead_letter": self.dead_letter,
            "action": self.action,
            "topic": self.source_topic,
            "partition": self.partition,
            "offset": self.offset,
            "detail": self.detail,
        }


async def replay(
    system: System,
    *,
    select_all: bool,
    topic: str | None,
    coordinates: tuple[str, int, int] | None,
    dry_run: bool,
    force: bool,
    timeout: float,
) -> list[ReplayOutcome]:
    if coordinates is not None:
        dlq_topic, partition, offset = coordinates
        message = await fetch_one(system, dlq_topic, partition, offset, timeout=timeout)
        if message is None:
            return [
                ReplayOutcome(
                    replay_id(dlq_topic, partition, offset), "failed", None, detail="no such record"
                )
            ]
        letters = [DeadLetter(message)]
    else:
        if not select_all:
            raise ValueError("replay needs dead-letter coordinates or select_all")
        letters, _ = await read_dead_letters(
            system, await dlq_topics(system, topic), timeout=timeout
        )
    if not dry_run:
        await ensure_replays_topic(system)
    done = await replayed_ids(system, timeout=timeout)
    outcomes: list[ReplayOutcome] = []
    producer: AIOKafkaProducer | None = None
    try:
        for letter in letters:
            source = letter.source_topic
            if not is_dlq(letter.message.topic) or not source:
                outcomes.append(
                    ReplayOutcome(letter.id, "failed", source, detail="not a dead letter")
                )
                continue
            if letter.id in done and not force:
                when = done[letter.id].get("replayed_at", "")
                outcomes.append(
                    ReplayOutcome(
                        letter.id,
                        "would-skip" if dry_run else "skipped",
                        source,
                        detail=f"already replayed {when}".strip(),
                    )
                )
                continue
            if dry_run:
                outcomes.append(ReplayOutcome(letter.id, "would-replay", source))
                continue
            if producer is None:
                producer = await _producer(system)
            outcomes.append(await _replay_one(system, producer, letter, forced=letter.id in done))
    finally:
        if producer is not None:
            await producer.stop()
    return outcomes


async def _producer(system: System) -> AIOKafkaProducer:
    settings = KafkaSettings(bootstrap=system.kafka_bootstrap)
    producer = AIOKafkaProducer(
        **system.kafka_options(),
        client_id=CLIENT_ID,
        acks="all",
        enable_idempotence=settings.enable_idempotence,
        max_request_size=settings.max_record_bytes + 64 * 1024,
    )
    await producer.start()
    return producer


async def _replay_one(
    system: System, producer: AIOKafkaProducer, letter: DeadLetter, *, forced: bool
) -> ReplayOutcome:
    source = letter.source_topic
    if source is None:
        raise ValueError("the dead letter does not name its source topic")
    partitions = await producer.partitions_for(source)
    partition = letter.source_partition
    if partition is not None and partition not in partitions:
        partition = None  # let the key choose, as the original producer's partitioner did
    metadata = await producer.send_and_wait(
        source,
        value=letter.message.value,
        key=letter.message.key,
        partition=partition,
        headers=replay_headers(letter.message.headers, letter.id),
    )
    await producer.send_and_wait(
        REPLAYS_TOPIC,
        key=letter.id.encode(),
        value=replay_record_value(
            letter.id, source, metadata.partition, metadata.offset, forced=forced
        ),
    )
    return ReplayOutcome(letter.id, "replayed", source, metadata.partition, metadata.offset)


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None
