"""The limit: the same broker and PostgreSQL with nothing of carelink in between.

Kafka: a raw aiokafka producer and a reader with assigned partitions, with
records of a real referral's size and headers. PostgreSQL: inserts of rows
shaped like intake's referrals (text key, the submission as jsonb), all in one
transaction with executemany, and one transaction per row.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg

from contracts.topics import HOSPITAL_PARTITIONS, TopicSpec
from services.lib.runtime.kafka import ensure_topics
from services.lib.runtime.settings import KafkaSettings
from services.tools.bench.progress import Ticker, say
from services.tools.bench.report import percentiles
from services.tools.bench.traffic import PhaseTimeout, assigned_consumer, make_producer
from services.tools.localinfra import ensure_databases
from services.tools.simulators.referrals import HospitalRecord

SENT_HEADER = "bench-sent-ns"


async def kafka_limit(
    bootstrap: str,
    sample: HospitalRecord,
    messages: int,
    *,
    topic: str,
    latency_seconds: float,
    timeout: float,
    cpu_probe: Callable[[], float | None] | None = None,
) -> dict[str, Any]:
    """Produce, consume and round-trip rates over `messages` records, then round-trip
    latency at half the round-trip rate.

    `cpu_probe` returns the CPU seconds used so far by the broker and this process (the
    raw client): read before and after the round trip, it gives the CPU one raw
    round-trip message costs, the unit the report measures a referral's CPU in.
    """
    await ensure_topics(KafkaSettings(bootstrap=bootstrap), [TopicSpec(topic, HOSPITAL_PARTITIONS)])
    keys = [f"ref-{uuid.uuid4()}".encode() for _ in range(messages)]
    headers = list(sample.headers)
    consumer = await assigned_consumer(bootstrap, topic)
    producer = make_producer(bootstrap)
    await producer.start()
    ticker = Ticker("raw kafka")
    try:
        received = 0
        last_at = 0.0
        latencies: list[float] = []
        stop = asyncio.Event()

        async def consume() -> None:
            nonlocal received, last_at
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=100, max_records=5000)
                now = time.perf_counter_ns()
                for records in batches.values():
                    for record in records:
                        stamp = dict(record.headers).get(SENT_HEADER)
                        if stamp is not None:
                            latencies.append((now - int(stamp)) / 1e6)
                        else:
                            received += 1
                    last_at = now / 1e9

        reader = asyncio.create_task(consume())
        say("raw kafka", f"round trip: {messages} records of {len(sample.value)} bytes")
        cpu_before = cpu_probe() if cpu_probe else None
        started = time.perf_counter()
        futures = []
        for key in keys:
            futures.append(await producer.send(topic, value=sample.value, key=key, headers=headers))
        await asyncio.gather(*futures)
        produced_at = time.perf_counter()
        deadline = time.monotonic() + timeout
        while received < messages:
            if reader.done():
                reader.result()
            if time.monotonic() > deadline:
                raise PhaseTimeout(f"raw round trip: {received}/{messages} records came back")
            ticker(f"received {received}/{messages}")
            await asyncio.sleep(0.02)
        cpu_after = cpu_probe() if cpu_probe else None
        produce_rate = messages / (produced_at - started)
        round_trip_rate = messages / (last_at - started)
        cpu_ms_per_message = (
            (cpu_after - cpu_before) * 1000 / messages
            if cpu_before is not None and cpu_after is not None
            else None
        )
        say(
            "raw kafka",
            f"produce {produce_rate:,.0f}/s, round trip {round_trip_rate:,.0f}/s",
        )

        # Consume only: a fresh reader over what is now on the topic.
        alone = await assigned_consumer(bootstrap, topic)
        try:
            count = 0
            t0 = time.perf_counter()
            while count < messages:
                if time.perf_counter() - t0 > timeout:
                    raise PhaseTimeout(f"raw consume: {count}/{messages} records read")
                batches = await alone.getmany(timeout_ms=100, max_records=10000)
                count += sum(len(r) for r in batches.values())
            consume_rate = messages / (time.perf_counter() - t0)
        finally:
            await alone.stop()
        say("raw kafka", f"consume alone {consume_rate:,.0f}/s")

        # Latency at half the round-trip rate, a timestamp in a header.
        paced_rate = round_trip_rate / 2
        count = int(min(messages, max(500, paced_rate * latency_seconds)))
        say("raw kafka", f"latency: {count} records paced at {paced_rate:,.0f}/s")
        futures = []
        t0 = time.perf_counter()
        sent = 0
        while sent < count:
            due = min(count, int((time.perf_counter() - t0) * paced_rate) + 1)
            while sent < due:
                stamp = str(time.perf_counter_ns()).encode()
                futures.append(
                    await producer.send(
                        topic,
                        value=sample.value,
                        key=keys[sent],
                        headers=[*headers, (SENT_HEADER, stamp)],
                    )
                )
                sent += 1
            ticker(f"paced {sent}/{count}")
            await asyncio.sleep(0.005)
        await asyncio.gather(*futures)
        achieved = count / (time.perf_counter() - t0)
        deadline = time.monotonic() + timeout
        while len(latencies) < count:
            if time.monotonic() > deadline:
                raise PhaseTimeout(f"raw latency: {len(latencies)}/{count} records came back")
            await asyncio.sleep(0.02)
        stop.set()
        await reader
        pct = percentiles(latencies)
        say(
            "raw kafka",
            f"latency p50 {pct['p50']:.1f} ms, p95 {pct['p95']:.1f} ms, p99 {pct['p99']:.1f} ms",
        )
        return {
            "messages": messages,
            "message_bytes": len(sample.value),
            "header_bytes": sum(len(k) + len(v) for k, v in headers),
            "produce_rate": produce_rate,
            "consume_rate": consume_rate,
            "round_trip_rate": round_trip_rate,
            "cpu_ms_per_message": cpu_ms_per_message,
            "latency_ms": pct,
            "latency_messages": count,
            "latency_target_rate": paced_rate,
            "latency_achieved_rate": achieved,
        }
    finally:
        await producer.stop()
        await consumer.stop()


async def postgres_limit(
    admin_url: str, database: str, submission: dict[str, Any], rows: int, single_rows: int
) -> dict[str, Any]:
    """Inserts of referral-shaped rows: executemany in one transaction, then one
    transaction (one commit) per row."""
    url = (await ensure_databases(admin_url, [database]))[database]
    conn: asyncpg.Connection = await asyncpg.connect(url)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS bench_rows (
                   id text PRIMARY KEY,
                   data jsonb NOT NULL,
                   created_at timestamptz NOT NULL DEFAULT now())"""
        )
        text = json.dumps(submission, ensure_ascii=False)
        batch = [(f"ref-{uuid.uuid4()}", text) for _ in range(rows)]
        say("raw postgres", f"{rows} rows of {len(text.encode())} bytes in one transaction")
        t0 = time.perf_counter()
        async with conn.transaction():
            await conn.executemany("INSERT INTO bench_rows (id, data) VALUES ($1, $2)", batch)
        batched = rows / (time.perf_counter() - t0)
        say("raw postgres", f"one transaction: {batched:,.0f} rows/s")

        single = [(f"ref-{uuid.uuid4()}", text) for _ in range(single_rows)]
        ticker = Ticker("raw postgres")
        t0 = time.perf_counter()
        for i, row in enumerate(single):
            async with conn.transaction():
                await conn.execute("INSERT INTO bench_rows (id, data) VALUES ($1, $2)", *row)
            if i % 500 == 0:
                ticker(f"one commit per row: {i}/{single_rows}")
        per_row = single_rows / (time.perf_counter() - t0)
        say("raw postgres", f"one commit per row: {per_row:,.0f} rows/s")
        fsync = await conn.fetchval("SHOW fsync")
        synchronous_commit = await conn.fetchval("SHOW synchronous_commit")
        return {
            "row_bytes": len(text.encode()),
            "batch_rows": rows,
            "batch_rows_per_s": batched,
            "single_rows": single_rows,
            "single_rows_per_s": per_row,
            "fsync": fsync,
            "synchronous_commit": synchronous_commit,
        }
    finally:
        await conn.close()
