"""A simulated hospital: submits scripted referrals at a steady rate, answers the
status updates it reads back as each script says (discharge once services are
ordered, postpone, readmit, cancel …), and keeps the statistics a hospital's
integration team would watch: statuses reached, how long they took, sequence
gaps, paths the contract's FHIR Task table does not allow, dead letters.

Only the public contract is used: raw aiokafka on `hospital.<id>.referrals`,
`hospital.<id>.updates` and `hospital.<id>.referrals.dlq`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import statistics
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from contracts import topics
from contracts.fhir_task import Position, advance, move_problem
from contracts.hospital_v1 import Status
from services.lib.policy import seoul_date
from services.tools.simulators.hospital_io import Update, UpdatesReader
from services.tools.simulators.referrals import HospitalRecord
from services.tools.simulators.scenario import (
    TERMINAL,
    Board,
    FollowUp,
    Mix,
    Script,
    SubmissionBuilder,
    discharge_date,
    generate,
    new_run_id,
)

# A person referred again is referred a little after their previous case ended, not in the
# same second: intake learns of the closure from care.cases, after the hospital does.
CHAIN_PAUSE = 3.0

ProgressCallback = Callable[["HospitalStats"], None]


@dataclass
class Track:
    """One referral as the hospital follows it."""

    script: Script
    sent_at: float | None = None  # monotonic
    case_id: str | None = None
    sequences: list[int] = field(default_factory=list)
    trail: list[tuple[str, str]] = field(default_factory=list)
    ce_ids: set[str] = field(default_factory=set)
    seen: Counter[str] = field(default_factory=Counter)
    fired: set[int] = field(default_factory=set)
    final: str | None = None
    final_reason: str | None = None
    final_at: float | None = None  # monotonic
    joined_existing_case: bool = False
    # Where the feed stands in the contract's FHIR Task table, and its first illegal move.
    position: Position = field(default_factory=Position)
    illegal: str | None = None

    @property
    def gap_free(self) -> bool:
        return self.sequences == list(range(1, len(self.sequences) + 1))


@dataclass
class HospitalStats:
    hospital_id: str
    run_id: str
    seed: int
    planned: int
    tracks: dict[str, Track]
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    sent: int = 0
    follow_ups_sent: Counter[str] = field(default_factory=Counter)
    updates: int = 0
    duplicates: int = 0
    # Updates whose sequence was not the next one expected (must stay 0).
    sequence_gaps: int = 0
    # Referrals whose statuses broke the contract's FHIR Task table (must stay 0).
    illegal_paths: int = 0
    # Dead letters on hospital.<id>.referrals.dlq since the start: ours, and all.
    dead_letters: int = 0
    dead_letters_all: int = 0
    # Referrals per status and per (status, business_status) reached at least once.
    status_counts: Counter[str] = field(default_factory=Counter)
    business_counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    final_counts: Counter[str] = field(default_factory=Counter)
    # Seconds from the submission to the first update of each status / business status.
    to_status: dict[str, list[float]] = field(default_factory=dict)
    to_business_status: dict[str, list[float]] = field(default_factory=dict)
    timed_out: bool = False

    @property
    def terminal(self) -> int:
        return sum(self.final_counts.values())

    @property
    def done(self) -> bool:
        return self.sent == self.planned and self.terminal == self.planned

    @property
    def elapsed(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    def latency(self, status: str) -> tuple[float, float] | None:
        """(median, p95) seconds from submission to `status`, None before the first."""
        return _median_p95(self.to_status.get(status, []))

    def unexpected(self) -> list[Script]:
        """Terminal referrals that did not end as their script expected (informative:
        staff without the scripts, or a person with earlier cases, end differently)."""
        return [
            t.script
            for t in self.tracks.values()
            if t.final is not None and t.final != t.script.expected_status
        ]

    def summary(self) -> dict[str, Any]:
        """Counts and timings only: no personal data."""
        return {
            "hospital_id": self.hospital_id,
            "run_id": self.run_id,
            "seed": self.seed,
            "planned": self.planned,
            "sent": self.sent,
            "terminal": self.terminal,
            "final": dict(self.final_counts),
            "reached": dict(self.status_counts),
            "business_status": {f"{s}/{b}": n for (s, b), n in self.business_counts.items()},
            "seconds_to_status": {
                status: {"median": round(m, 3), "p95": round(p, 3)}
                for status in self.to_status
                if (mp := self.latency(status)) is not None
                for m, p in [mp]
            },
            "seconds_to_business_status": {
                name: {"median": round(m, 3), "p95": round(p, 3)}
                for name, values in self.to_business_status.items()
                if (mp := _median_p95(values)) is not None
                for m, p in [mp]
            },
            "updates": self.updates,
            "duplicates": self.duplicates,
            "sequence_gaps": self.sequence_gaps,
            "illegal_paths": self.illegal_paths,
            "illegal": [
                {
                    "referral_id": rid,
                    "problem": t.illegal,
                    "trail": [f"{s}/{b}" for s, b in t.trail],
                }
                for rid, t in self.tracks.items()
                if t.illegal is not None
            ],
            "dead_letters": self.dead_letters,
            "dead_letters_all": self.dead_letters_all,
            "follow_ups": dict(self.follow_ups_sent),
            "not_as_scripted": [
                {**t.script.summary(), "final": t.final, "final_reason": t.final_reason}
                for t in self.tracks.values()
                if t.final is not None and t.final != t.script.expected_status
            ],
            "elapsed_s": round(self.elapsed, 1),
            "timed_out": self.timed_out,
        }


def _median_p95(values: list[float]) -> tuple[float, float] | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(0.95 * len(ordered)))  # nearest-rank percentile
    return statistics.median(ordered), ordered[rank - 1]


class _DeadLetters:
    """Counts records arriving on a dead-letter topic from now on."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await consumer.start()
        self._consumer = consumer
        partitions = consumer.partitions_for_topic(self.topic)
        for _ in range(20):
            if partitions:
                break
            await asyncio.sleep(0.1)
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(self.topic)
        if not partitions:
            raise RuntimeError(f"topic {self.topic} does not exist")
        assigned = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_end(*assigned)
        for tp in assigned:  # resolve the end offsets now, before anything is sent
            await consumer.position(tp)

    async def poll(self) -> list[str]:
        """Keys of the dead letters that arrived since the last poll."""
        if self._consumer is None:
            raise RuntimeError("poll() before start()")
        batches = await self._consumer.getmany(timeout_ms=0, max_records=1000)
        return [
            record.key.decode(errors="replace") if record.key else ""
            for records in batches.values()
            for record in records
        ]

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()


class SimulatedHospital:
    def __init__(
        self,
        bootstrap: str,
        hospital_id: str,
        scripts: list[Script],
        *,
        seed: int,
        run_id: str,
        board: Board | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.hospital_id = hospital_id
        self.builder = SubmissionBuilder(hospital_id, seed=seed)
        self.board = board
        self.stats = HospitalStats(
            hospital_id=hospital_id,
            run_id=run_id,
            seed=seed,
            planned=len(scripts),
            tracks={s.referral_id: Track(s) for s in scripts},
        )
        self._pending: deque[Script] = deque(scripts)
        self._producer: AIOKafkaProducer | None = None
        self._in_flight: list[asyncio.Future[Any]] = []
        if board is not None:
            board.publish(hospital_id, scripts)

    # -- sending ------------------------------------------------------------------

    async def _send(self, record: HospitalRecord) -> None:
        if self._producer is None:
            raise RuntimeError("the hospital sends before start()")
        future = await self._producer.send(
            record.topic, value=record.value, key=record.key, headers=record.headers
        )
        self._in_flight.append(future)

    async def _flush(self) -> None:
        if self._in_flight:
            futures, self._in_flight = self._in_flight, []
            await asyncio.gather(*futures)

    def _ready(self, script: Script) -> bool:
        if script.after is None:
            return True
        before = self.stats.tracks[script.after]
        return before.final_at is not None and time.monotonic() - before.final_at >= CHAIN_PAUSE

    async def _submit_due(self, rate: float) -> None:
        due = self.stats.planned if rate <= 0 else int(self.stats.elapsed * rate) + 1
        while self.stats.sent < min(due, self.stats.planned):
            script = next((s for s in self._pending if self._ready(s)), None)
            if script is None:
                return  # only chain members waiting for their predecessor
            self._pending.remove(script)
            data = self.builder.build(script, datetime.now(UTC))
            self.stats.tracks[script.referral_id].sent_at = time.monotonic()
            await self._send(self.builder.hospital.submitted(data))
            self.stats.sent += 1

    async def _follow_up(self, track: Track, index: int, step: FollowUp) -> None:
        track.fired.add(index)
        hospital = self.builder.hospital
        rid = track.script.referral_id
        today = seoul_date(datetime.now(UTC))
        if step.action == "discharge":
            record = hospital.discharged(rid)
        elif step.action == "cancel":
            record = hospital.cancelled(rid, step.reason_code or "cancelled-by-hospital")
        else:  # postpone, return, readmit: a new expected discharge date
            record = hospital.updated(
                rid, expected_discharge_date=discharge_date(today, step.days or 5)
            )
        await self._send(record)
        self.stats.follow_ups_sent[step.action] += 1

    # -- reading ------------------------------------------------------------------

    async def _on_update(self, update: Update, received: float) -> None:
        track = self.stats.tracks.get(update.referral_id)
        if track is None:
            return  # another producer's referral on the same hospital topic
        stats = self.stats
        data = update.data
        sequence = int(data["sequence"])
        ce_id = update.headers.get("ce_id", f"{update.referral_id}/{sequence}")
        if ce_id in track.ce_ids or sequence in track.sequences:
            stats.duplicates += 1  # at-least-once: a repeat, dropped as the contract says
            return
        expected = len(track.sequences) + 1
        if sequence != expected:
            stats.sequence_gaps += 1
        track.ce_ids.add(ce_id)
        track.sequences.append(sequence)
        stats.updates += 1
        status, business = str(data["status"]), str(data["business_status"])
        track.case_id = track.case_id or data.get("case_id")
        track.trail.append((status, business))
        self._check_move(track, sequence, status)
        if (data.get("details") or {}).get("joined_existing_case"):
            track.joined_existing_case = True
        first_status = status not in {s for s, _ in track.trail[:-1]}
        first_business = track.seen[business] == 0
        track.seen[business] += 1
        if self.board is not None:
            if track.case_id:
                self.board.link(str(track.case_id), self.hospital_id, update.referral_id)
            self.board.saw(self.hospital_id, update.referral_id, business)
        since = received - (track.sent_at if track.sent_at is not None else received)
        if first_status:
            stats.status_counts[status] += 1
            stats.to_status.setdefault(status, []).append(since)
        if first_business:
            stats.business_counts[(status, business)] += 1
            stats.to_business_status.setdefault(business, []).append(since)
        if status in TERMINAL and track.final is None:
            track.final = status
            track.final_reason = data.get("reason_code")
            track.final_at = received
            stats.final_counts[status] += 1
        if track.final is not None:
            return
        for index, step in enumerate(track.script.follow_ups):
            if (
                index not in track.fired
                and step.on == business
                and track.seen[business] >= step.nth
                and not (step.unless and track.seen[step.unless])
            ):
                await self._follow_up(track, index, step)

    def _check_move(self, track: Track, sequence: int, status: str) -> None:
        """Follow the feed through the contract's FHIR Task table; count a referral whose
        path breaks it once, keeping its first illegal move."""
        try:
            problem = move_problem(track.position, Status(status))
        except ValueError:
            problem = f"{status!r} is not a status of the contract"
        if problem is None:
            track.position = advance(track.position, Status(status))
        elif track.illegal is None:
            track.illegal = f"#{sequence}: {problem}"
            self.stats.illegal_paths += 1

    # -- the run ------------------------------------------------------------------

    async def run(
        self,
        *,
        rate: float,
        on_progress: ProgressCallback | None = None,
        stop: asyncio.Event | None = None,
        timeout: float | None = None,
        progress_interval: float = 1.0,
    ) -> HospitalStats:
        stats = self.stats
        reader = UpdatesReader(self.bootstrap, topics.updates(self.hospital_id))
        dlq = _DeadLetters(self.bootstrap, topics.dead_letters(topics.referrals(self.hospital_id)))
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=5)
        ours = set(stats.tracks)
        await reader.start()
        try:
            await dlq.start()
            await producer.start()
            self._producer = producer
            stats.started = time.monotonic()
            deadline = None if timeout is None else stats.started + timeout
            next_report = stats.started
            while not stats.done:
                if stop is not None and stop.is_set():
                    break
                if deadline is not None and time.monotonic() > deadline:
                    stats.timed_out = True
                    break
                await self._submit_due(rate)
                await self._flush()
                for update in await reader.poll(timeout_ms=50):
                    await self._on_update(update, time.monotonic())
                for key in await dlq.poll():
                    stats.dead_letters_all += 1
                    stats.dead_letters += key in ours
                await self._flush()
                # Forget what this run does not follow: the reader keeps everything it reads.
                for rid in [r for r in reader.by_referral if r not in ours]:
                    del reader.by_referral[rid]
                if on_progress is not None and time.monotonic() >= next_report:
                    next_report += progress_interval
                    on_progress(stats)
        finally:
            stats.finished = time.monotonic()
            with contextlib.suppress(Exception):
                await self._flush()
            await producer.stop()
            await dlq.stop()
            await reader.stop()
        if on_progress is not None:
            on_progress(stats)
        return stats


async def run_hospital(
    bootstrap: str,
    hospital_id: str,
    *,
    rate: float,
    count: int,
    mix: Mix | None = None,
    on_progress: ProgressCallback | None = None,
    seed: int | None = None,
    run_id: str | None = None,
    board: Board | None = None,
    stop: asyncio.Event | None = None,
    timeout: float | None = None,
    district: str | None = None,
) -> HospitalStats:
    """Submit `count` scripted referrals at `rate` per second (0: all at once) and follow
    them until every one is terminal, `stop` is set or `timeout` seconds have passed.

    With a `board`, the scripts are published there for coordinators in this process.
    `on_progress` is called about once a second and at the end.
    """
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
    run_id = run_id or new_run_id()
    scripts = generate(count, mix, seed=seed, run_id=run_id, district=district)
    hospital = SimulatedHospital(
        bootstrap, hospital_id, scripts, seed=seed, run_id=run_id, board=board
    )
    return await hospital.run(rate=rate, on_progress=on_progress, stop=stop, timeout=timeout)
