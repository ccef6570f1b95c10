"""What every measurement shares: a hospital's producer, a reader of a topic with
assigned partitions, paced sending, fresh referrals with patients unique across
the whole run, and waiting for the system to go quiet between measurements."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from services.tools.bench.progress import Ticker, say
from services.tools.simulators.referrals import SEOUL_DONGS, FakeHospital, HospitalRecord


class PhaseTimeout(TimeoutError):
    """A measurement did not finish in time; the run goes on with the next phase."""


def make_producer(bootstrap: str) -> AIOKafkaProducer:
    # The services' relay producer settings (services.lib.runtime.kafka.make_producer):
    # batched, acks from the broker, so the raw figure and the system's are comparable.
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        max_batch_size=256 * 1024,
        max_request_size=2 * 1024 * 1024,
    )


async def assigned_consumer(bootstrap: str, topic: str) -> AIOKafkaConsumer:
    """Every partition of `topic` from the beginning, no consumer group (nothing to join)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        # A short fetch wait keeps the reader's own share of a latency small.
        fetch_max_wait_ms=50,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    partitions = consumer.partitions_for_topic(topic)
    for _ in range(100):
        if partitions:
            break
        await asyncio.sleep(0.1)
        await consumer._client.force_metadata_update()
        partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        await consumer.stop()
        raise RuntimeError(f"topic {topic} does not exist")
    assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(assigned)
    await consumer.seek_to_beginning(*assigned)
    return consumer


async def send_all(
    producer: AIOKafkaProducer, records: Sequence[HospitalRecord], ticker: Ticker | None = None
) -> float:
    """Send as fast as the producer takes them; returns perf_counter when all are acked."""
    futures = []
    for i, r in enumerate(records):
        futures.append(await producer.send(r.topic, value=r.value, key=r.key, headers=r.headers))
        if ticker is not None and i % 1000 == 0:
            ticker(f"sent {i}/{len(records)}")
    await asyncio.gather(*futures)
    return time.perf_counter()


async def send_paced(
    producer: AIOKafkaProducer,
    records: Sequence[HospitalRecord],
    rate: float,
    sent_at: dict[str, float],
    ticker: Ticker | None = None,
) -> float:
    """Send at `rate` records/s in small ticks, noting each referral's send time.

    Returns the rate actually achieved.
    """
    futures = []
    started = time.perf_counter()
    i = 0
    while i < len(records):
        due = min(len(records), int((time.perf_counter() - started) * rate) + 1)
        while i < due:
            r = records[i]
            sent_at[r.key.decode()] = time.perf_counter()
            futures.append(
                await producer.send(r.topic, value=r.value, key=r.key, headers=r.headers)
            )
            i += 1
        if ticker is not None:
            ticker(f"paced {i}/{len(records)} at {rate:.0f}/s")
        await asyncio.sleep(0.005)
    await asyncio.gather(*futures)
    elapsed = time.perf_counter() - started
    return len(records) / elapsed if elapsed > 0 else 0.0


@dataclass
class UpdateWatcher:
    """Reads a hospital's updates topic and notes when each of our referrals first
    reached each business status (perf_counter), and how many updates each got."""

    bootstrap: str
    topic: str
    wanted: set[str]
    on_update: Callable[[dict[str, Any], float], None] | None = None
    first_seen: dict[str, dict[str, float]] = field(default_factory=dict)
    updates: int = 0
    _consumer: AIOKafkaConsumer | None = None
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._consumer = await assigned_consumer(self.bootstrap, self.topic)
        self._task = asyncio.create_task(self._run(), name=f"watch {self.topic}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer is not None:
            await self._consumer.stop()

    async def _run(self) -> None:
        if self._consumer is None:
            raise RuntimeError("the traffic reader runs before start()")
        while True:
            batches = await self._consumer.getmany(timeout_ms=100, max_records=5000)
            now = time.perf_counter()
            for records in batches.values():
                for record in records:
                    data = json.loads(record.value)
                    referral_id = data.get("referral_id")
                    if referral_id not in self.wanted:
                        continue
                    self.updates += 1
                    status = str(data.get("business_status"))
                    self.first_seen.setdefault(status, {}).setdefault(referral_id, now)
                    if self.on_update is not None:
                        self.on_update(data, now)

    def seen(self, business_status: str) -> dict[str, float]:
        return self.first_seen.get(business_status, {})

    async def wait_for(
        self,
        business_status: str,
        count: int,
        *,
        timeout: float,
        stall: float = 60.0,
        ticker: Ticker | None = None,
        started: float | None = None,
    ) -> None:
        """Until `count` referrals reached the status; PhaseTimeout after `timeout` s in
        all or `stall` s without any update for our referrals (any status counts as
        progress: in a long pipeline the first referral may take a while to get there)."""
        deadline = time.monotonic() + timeout
        last_seen, last_change = -1, time.monotonic()
        while True:
            if self._task is not None and self._task.done():
                self._task.result()  # the reader died: say why
            done = len(self.seen(business_status))
            if done >= count:
                return
            now = time.monotonic()
            if self.updates != last_seen:
                last_seen, last_change = self.updates, now
            if ticker is not None:
                rate = ""
                if started is not None and done:
                    rate = f", {done / (time.perf_counter() - started):.0f}/s"
                ticker(f"{business_status}: {done}/{count}{rate}")
            if now > deadline or now - last_change > stall:
                raise PhaseTimeout(
                    f"{done}/{count} referrals reached {business_status!r} on {self.topic}"
                    f" ({'no progress for ' + str(int(stall)) + ' s' if now <= deadline else 'timed out'})"
                )
            await asyncio.sleep(0.1)


class Referrals:
    """Fresh submissions, one patient each, never the same person twice in a run
    (the same person twice would join the first case instead of opening one)."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self._seed = seed
        self._people: set[tuple[str, str]] = set()
        self._hospitals: dict[str, FakeHospital] = {}

    def make(
        self, hospital_id: str, count: int, *, districts: Sequence[str] | None = None
    ) -> list[HospitalRecord]:
        """`count` submissions, patients living in `districts` (default: the simulators')."""
        hospital = self._hospitals.get(hospital_id)
        if hospital is None:
            hospital = FakeHospital(hospital_id, seed=self._rng.randrange(2**31))
            self._hospitals[hospital_id] = hospital
        records: list[HospitalRecord] = []
        districts = sorted(districts or SEOUL_DONGS)
        while len(records) < count:
            data = hospital.submission(
                age=self._rng.randint(55, 95), district=self._rng.choice(districts)
            )
            patient = data["patient"]
            person = ("".join(patient["name"].split()).casefold(), patient["birth_date"])
            if person in self._people:
                continue
            self._people.add(person)
            records.append(hospital.submitted(data))
        return records

    def hospital(self, hospital_id: str) -> FakeHospital:
        if hospital_id not in self._hospitals:
            self.make(hospital_id, 0)
        return self._hospitals[hospital_id]


async def quiesce(
    databases: dict[str, str], *, quiet_for: float = 3.0, timeout: float = 300.0
) -> float:
    """Wait until no service handles anything any more: every outbox drained and no
    inbox row added for `quiet_for` seconds (cumulative statistics, cheap on any size).

    Returns the seconds waited. A measurement that started on a busy system would
    count the previous one's backlog.
    """
    started = time.monotonic()
    conns = {name: await asyncpg.connect(url) for name, url in databases.items()}
    ticker = Ticker("quiesce", 5.0)
    try:
        last: tuple[int, ...] | None = None
        quiet_since = time.monotonic()
        while True:
            inserted: list[int] = []
            pending = 0
            for conn in conns.values():
                # Statistics are per backend snapshot unless cleared: read fresh numbers.
                await conn.execute("SELECT pg_stat_clear_snapshot()")
                inserted.append(
                    int(
                        await conn.fetchval(
                            "SELECT coalesce(sum(n_tup_ins + n_tup_upd), 0) FROM pg_stat_user_tables"
                            " WHERE relname IN ('inbox', 'outbox')"
                        )
                    )
                )
                pending += int(
                    await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                )
            now = time.monotonic()
            state = tuple(inserted)
            if state != last or pending:
                last, quiet_since = state, now
            elif now - quiet_since >= quiet_for:
                return now - started
            if now - started > timeout:
                say("quiesce", f"still busy after {timeout:.0f}s; going on")
                return now - started
            ticker(f"waiting for the services to finish their backlog (outbox pending {pending})")
            await asyncio.sleep(0.5)
    finally:
        for conn in conns.values():
            await conn.close()


def rate_between(times: Sequence[float], start: float) -> float:
    """Records per second from `start` to the last of `times`."""
    if not times:
        return 0.0
    elapsed = max(times) - start
    return len(times) / elapsed if elapsed > 0 else 0.0


def steady_rate(times: Sequence[float], low: float = 0.1, high: float = 0.9) -> float | None:
    """Rate between the 10th and 90th percentile arrival: without start-up and tail."""
    ordered = sorted(times)
    if len(ordered) < 20:
        return None
    a, b = int(len(ordered) * low), int(len(ordered) * high) - 1
    span = ordered[b] - ordered[a]
    return (b - a) / span if span > 0 else None
