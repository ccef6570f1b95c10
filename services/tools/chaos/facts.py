"""Collecting what the verification needs, after the faults: every update record on
the hospitals' topics (read again from the beginning, independently of the
simulated hospitals), rows from the four databases, whether the system has gone
quiet, and log lines that back up a finding."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from contracts import topics
from services.lib.runtime.outbox import decode_headers
from services.tools.stack.deployables import SERVICES
from services.tools.stack.system import SystemInfo

from .verify import (
    CaseRow,
    DatabaseFacts,
    DeadLetter,
    IntakeReferral,
    ObservedUpdate,
    OutboxUpdate,
    OutcomeReferral,
    TaskRow,
)

T = TypeVar("T")
DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


# -- the hospitals' topics ---------------------------------------------------------------


async def read_updates(
    bootstrap: str,
    hospital_ids: Iterable[str],
    *,
    idle_s: float = 4.0,
    timeout_s: float = 120.0,
) -> tuple[list[ObservedUpdate], int]:
    """Every record on the hospitals' updates topics, from the beginning, until nothing new
    came for `idle_s` (Tansu's end offsets are unreliable, so no end-offset test).
    Returns the updates and how many records could not be read as updates."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    try:
        assigned: list[TopicPartition] = []
        for hospital_id in hospital_ids:
            topic = topics.updates(hospital_id)
            partitions = consumer.partitions_for_topic(topic)
            for _ in range(50):
                if partitions:
                    break
                await asyncio.sleep(0.1)
                await consumer._client.force_metadata_update()
                partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                raise RuntimeError(f"topic {topic} does not exist")
            assigned += [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        found: list[ObservedUpdate] = []
        unreadable = 0
        deadline = time.monotonic() + timeout_s
        last_new = time.monotonic()
        while time.monotonic() - last_new < idle_s and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for tp, records in batches.items():
                hospital_id = topics.hospital_of(tp.topic) or tp.topic
                for record in records:
                    update = parse_update(
                        hospital_id,
                        record.value,
                        record.headers,
                        partition=record.partition,
                        offset=record.offset,
                    )
                    if update is None:
                        unreadable += 1
                    else:
                        found.append(update)
                if records:
                    last_new = time.monotonic()
        return found, unreadable
    finally:
        await consumer.stop()


def parse_update(
    hospital_id: str,
    value: bytes | None,
    headers: Iterable[tuple[str, bytes]] | None,
    *,
    partition: int,
    offset: int,
) -> ObservedUpdate | None:
    try:
        data = json.loads(value or b"")
        head = {name: raw.decode() for name, raw in headers or ()}
        return ObservedUpdate(
            topic_hospital=hospital_id,
            referral_id=str(data["referral_id"]),
            ce_id=head.get("ce_id") or f"{hospital_id}/{data['referral_id']}/{data['sequence']}",
            sequence=int(data["sequence"]),
            status=str(data["status"]),
            business_status=str(data.get("business_status")),
            case_id=data.get("case_id"),
            partition=partition,
            offset=offset,
            digest=hashlib.sha256(value or b"").hexdigest()[:16],
        )
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None


# -- the databases -----------------------------------------------------------------------


async def _with_retries(
    url: str, work: Callable[[asyncpg.Connection], Awaitable[T]], *, timeout_s: float = 60
) -> T:
    """Run `work` on a fresh connection, retrying while the database is unreachable."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            conn = await asyncpg.connect(url, timeout=10, command_timeout=60)
            try:
                return await work(conn)
            finally:
                await conn.close()
        except DB_ERRORS:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(1.0)


async def read_databases(info: SystemInfo) -> DatabaseFacts:
    facts = DatabaseFacts()
    urls = info.databases
    open_cases: dict[str, list[str]] = {}

    async def intake(conn: asyncpg.Connection) -> None:
        facts.intake_referrals = [
            IntakeReferral(r["hospital_id"], r["referral_id"], r["case_id"], r["outcome"])
            for r in await conn.fetch(
                "SELECT hospital_id, referral_id, case_id, outcome FROM referrals"
            )
        ]
        rows = await conn.fetch("SELECT case_id, open FROM cases")
        facts.intake_cases = [r["case_id"] for r in rows]
        open_cases["intake"] = [r["case_id"] for r in rows if r["open"]]

    async def referral(conn: asyncpg.Connection) -> None:
        facts.referral_cases = await _cases(conn)
        open_cases["referral"] = await _not_closed(conn)
        facts.plans = [r["case_id"] for r in await conn.fetch("SELECT case_id FROM plans")]
        facts.tasks += await _tasks(conn, "referral")

    async def scheduling(conn: asyncpg.Connection) -> None:
        facts.scheduling_cases = await _cases(conn)
        open_cases["scheduling"] = await _not_closed(conn)
        facts.tasks += await _tasks(conn, "scheduling")

    async def outcome(conn: asyncpg.Connection) -> None:
        facts.outcome_referrals = [
            OutcomeReferral(r["hospital_id"], r["referral_id"], r["case_id"], r["sequence"])
            for r in await conn.fetch(
                "SELECT hospital_id, referral_id, case_id, sequence FROM referrals"
            )
        ]
        rows = await conn.fetch(
            "SELECT id, topic, value, published_at IS NOT NULL AS published FROM outbox"
            " WHERE topic LIKE 'hospital.%.updates' ORDER BY id"
        )
        for row in rows:
            data = json.loads(bytes(row["value"]))
            facts.outcome_updates.append(
                OutboxUpdate(
                    row_id=row["id"],
                    hospital_id=topics.hospital_of(row["topic"]) or row["topic"],
                    referral_id=str(data["referral_id"]),
                    sequence=int(data["sequence"]),
                    status=str(data["status"]),
                    published=bool(row["published"]),
                )
            )

    await _with_retries(urls["intake"], intake)
    await _with_retries(urls["referral"], referral)
    await _with_retries(urls["scheduling"], scheduling)
    await _with_retries(urls["outcome"], outcome)
    facts.open_cases = open_cases
    for service in SERVICES:
        facts.unpublished[service] = await _with_retries(urls[service], _unpublished)
        facts.dead_letters += await _with_retries(urls[service], _DeadLetterReader(service))
    return facts


async def _cases(conn: asyncpg.Connection) -> list[CaseRow]:
    return [
        CaseRow(r["case_id"], r["hospital_id"], r["referral_id"])
        for r in await conn.fetch("SELECT case_id, hospital_id, referral_id FROM cases")
    ]


async def _not_closed(conn: asyncpg.Connection) -> list[str]:
    return [r["case_id"] for r in await conn.fetch("SELECT case_id FROM cases WHERE NOT closed")]


async def _tasks(conn: asyncpg.Connection, service: str) -> list[TaskRow]:
    return [
        TaskRow(service, r["id"], r["case_id"], r["kind"], r["status"])
        for r in await conn.fetch("SELECT id, case_id, kind, status FROM tasks")
    ]


async def _unpublished(conn: asyncpg.Connection) -> int:
    count: int = await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
    return count


class _DeadLetterReader:
    def __init__(self, service: str) -> None:
        self.service = service

    async def __call__(self, conn: asyncpg.Connection) -> list[DeadLetter]:
        return await _dead_letters(conn, self.service)


async def _dead_letters(conn: asyncpg.Connection, service: str) -> list[DeadLetter]:
    """Dead letters as the outbox holds them (original headers plus the reason); inbox rows
    marked dead-lettered without such a row are reported too."""
    found: list[DeadLetter] = []
    seen: set[tuple[str, str]] = set()
    for row in await conn.fetch(
        "SELECT topic, headers FROM outbox WHERE topic LIKE '%.dlq' ORDER BY id"
    ):
        stored = row["headers"]
        if isinstance(stored, str):  # jsonb as text: this connection has no jsonb codec
            stored = json.loads(stored)
        head = {}
        for name, raw in decode_headers(stored):
            head[name] = raw.decode(errors="replace")
        consumer = head.get("carelink_dlq_consumer", service)
        event_id = head.get("ce_id", "?")
        seen.add((consumer, event_id))
        found.append(
            DeadLetter(
                service=service,
                consumer=consumer,
                event_id=event_id,
                topic=head.get("carelink_dlq_topic", row["topic"]),
                error=head.get("carelink_dlq_error", "")[:300],
            )
        )
    for row in await conn.fetch(
        "SELECT consumer, event_id FROM inbox WHERE status = 'dead-lettered'"
    ):
        if (row["consumer"], row["event_id"]) not in seen:
            found.append(DeadLetter(service, row["consumer"], row["event_id"]))
    return found


# -- quiet -------------------------------------------------------------------------------


async def fingerprint(info: SystemInfo) -> tuple[tuple[int, int, int], ...]:
    """Per service: last outbox id, unpublished rows, inbox rows. Unchanged = nothing moves."""

    async def one(conn: asyncpg.Connection) -> tuple[int, int, int]:
        row = await conn.fetchrow(
            """SELECT (SELECT coalesce(max(id), 0) FROM outbox) AS last,
                      (SELECT count(*) FROM outbox WHERE published_at IS NULL) AS unpublished,
                      (SELECT count(*) FROM inbox) AS handled"""
        )
        return int(row["last"]), int(row["unpublished"]), int(row["handled"])

    return tuple([await _with_retries(info.databases[s], one, timeout_s=30) for s in SERVICES])


async def wait_quiet(info: SystemInfo, *, timeout_s: float, stable_s: float = 4.0) -> bool:
    """Until every outbox is drained and nothing changed for `stable_s`; False if the
    bound passes first."""
    deadline = time.monotonic() + timeout_s
    last: tuple[tuple[int, int, int], ...] | None = None
    since = time.monotonic()
    while time.monotonic() < deadline:
        try:
            now = await fingerprint(info)
        except DB_ERRORS:
            last = None
            await asyncio.sleep(1.0)
            continue
        drained = all(unpublished == 0 for _, unpublished, _ in now)
        if now != last or not drained:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= stable_s:
            return True
        await asyncio.sleep(1.0)
    return False


# -- logs --------------------------------------------------------------------------------

_NOISE = {"Received", "Processed", "policy gap"}


def service_logs(logs_dir: Path) -> list[Path]:
    """The four services' JSON logs, extra instances' (`intake-2.log`) included."""
    return [path for path in sorted(logs_dir.glob("*.log")) if path.stem.split("-")[0] in SERVICES]


def log_lines(
    logs_dir: Path, needles: Iterable[str], *, per_needle: int = 12
) -> dict[str, list[str]]:
    """Up to `per_needle` JSON log lines (file name prefixed) mentioning each needle
    (a case or referral id), warnings and errors first."""
    wanted = [n for n in dict.fromkeys(needles) if n]
    if not wanted or not logs_dir.is_dir():
        return {}
    hits: dict[str, list[tuple[int, str]]] = {n: [] for n in wanted}
    for path in service_logs(logs_dir):
        with path.open(errors="replace") as handle:
            for line in handle:
                matched = [n for n in wanted if n in line]
                if not matched:
                    continue
                rank = 0 if ('"level": "warning"' in line or '"level": "error"' in line) else 1
                for needle in matched:
                    hits[needle].append((rank, f"{path.name}: {line.strip()[:600]}"))
    return {
        needle: [text for _, text in sorted(found, key=lambda hit: hit[0])[:per_needle]]
        for needle, found in hits.items()
        if found
    }


def log_warnings(logs_dir: Path) -> dict[str, dict[str, int]]:
    """Per log file, how often each warning or error event was logged (policy gaps aside)."""
    summary: dict[str, dict[str, int]] = {}
    if not logs_dir.is_dir():
        return summary
    for path in service_logs(logs_dir):
        counts: Counter[str] = Counter()
        with path.open(errors="replace") as handle:
            for line in handle:
                if '"level": "warning"' not in line and '"level": "error"' not in line:
                    continue
                try:
                    entry: dict[str, Any] = json.loads(line)
                except ValueError:
                    continue
                event = str(entry.get("event", "?"))[:120]
                if event in _NOISE:
                    continue
                error = entry.get("error")
                counts[f"{entry.get('level')}: {event}" + (f" ({error})" if error else "")] += 1
        if counts:
            summary[path.name] = dict(counts.most_common(15))
    return summary
