"""A hospital's side of Kafka: raw aiokafka, as any hospital integration would do it.

No carelink internals here beyond the public contract, on purpose: this is what
the end-to-end tests, the simulator and the benchmarks publish and read with.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from services.tools.simulators.referrals import HospitalRecord


async def publish(bootstrap: str, records: Iterable[HospitalRecord]) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(r.topic, value=r.value, key=r.key, headers=r.headers)
            for r in records
        ]
        await asyncio.gather(*futures)
        return len(futures)
    finally:
        await producer.stop()


@dataclass(frozen=True)
class Update:
    """A status update as the hospital receives it, with its transport facts."""

    key: str
    headers: dict[str, str]
    data: dict[str, Any]
    partition: int
    offset: int

    @property
    def referral_id(self) -> str:
        return str(self.data["referral_id"])


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> list[int]:
    """The topic's partitions, waiting briefly for metadata (a topic just created)."""
    for _ in range(50):
        partitions = consumer.partitions_for_topic(topic)
        if partitions:
            return sorted(partitions)
        await asyncio.sleep(0.1)
        await consumer._client.force_metadata_update()
    raise RuntimeError(f"topic {topic} does not exist")


async def read_to_end(
    bootstrap: str, topic: str, *, timeout: float = 30.0
) -> list[tuple[str, str]]:
    """Every record of a topic as (key, value) text, from the beginning to its current end."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        assigned = [TopicPartition(topic, p) for p in await topic_partitions(consumer, topic)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        ends = await consumer.end_offsets(assigned)
        found: list[tuple[str, str]] = []
        deadline = time.monotonic() + timeout
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end in {timeout:.0f}s")
            batches = await consumer.getmany(timeout_ms=200, max_records=1000)
            found.extend(
                (
                    (record.key or b"").decode(errors="replace"),
                    (record.value or b"").decode(errors="replace"),
                )
                for records in batches.values()
                for record in records
            )
        return found
    finally:
        await consumer.stop()


class UpdatesReader:
    """Reads one topic from the beginning with assigned partitions (no consumer group:
    nothing to join, nothing committed, so every reader sees everything)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.by_referral: dict[str, list[Update]] = defaultdict(list)
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
        )
        await self._consumer.start()
        partitions = self._consumer.partitions_for_topic(self.topic)
        for _ in range(50):
            if partitions:
                break
            await asyncio.sleep(0.1)
            await self._consumer._client.force_metadata_update()
            partitions = self._consumer.partitions_for_topic(self.topic)
        if not partitions:
            raise RuntimeError(f"topic {self.topic} does not exist")
        assigned = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        self._consumer.assign(assigned)
        await self._consumer.seek_to_beginning(*assigned)

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    async def poll(self, timeout_ms: int = 200) -> list[Update]:
        if self._consumer is None:
            raise RuntimeError("poll() before start()")
        batches = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=1000)
        fresh: list[Update] = []
        for records in batches.values():
            for record in records:
                update = Update(
                    key=record.key.decode() if record.key else "",
                    headers={k: v.decode() for k, v in record.headers},
                    data=json.loads(record.value),
                    partition=record.partition,
                    offset=record.offset,
                )
                self.by_referral[update.referral_id].append(update)
                fresh.append(update)
        return fresh

    async def wait_for(
        self, done: Callable[[dict[str, list[Update]]], bool], *, timeout: float = 60.0
    ) -> dict[str, list[Update]]:
        deadline = time.monotonic() + timeout
        while not done(self.by_referral):
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met on {self.topic} within {timeout:.0f}s")
            await self.poll()
        return self.by_referral

    async def __aenter__(self) -> UpdatesReader:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()
