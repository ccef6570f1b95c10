"""services.lib.runtime.pipeline batches: one transaction per batch, a savepoint per record,
and exactly the same outcome per record as one record at a time."""

from __future__ import annotations

import collections
from pathlib import Path

import asyncpg
import pytest
from aiokafka import TopicPartition

from services.lib.runtime.errors import PermanentError
from services.lib.runtime.outbox import decode_headers
from services.lib.runtime.pipeline import Handler, Pipeline, Record, RetryPolicy
from services.tools.localinfra import Endpoints
from tests.integration.runtime_helpers import (
    ce_headers,
    committed_offset,
    inbox_rows,
    migrated_database,
    new_topic,
    outbox_rows,
    pool_for,
    produce,
    running_subscriber,
    state_rows,
    unique,
    wait_until,
)

pytestmark = pytest.mark.integration

FAST = RetryPolicy(attempts=2, base_delay_s=0.01, max_delay_s=0.02)


def _records(prefix: str, n: int) -> list[Record]:
    return [
        Record(
            topic="it.batch.source",
            partition=0,
            offset=i,
            key=b"case-1",
            value=f"v{i}".encode(),
            headers=ce_headers(f"{prefix}-{i}"),
        )
        for i in range(n)
    ]


async def _write_state(conn: asyncpg.Connection, record: Record) -> None:
    await conn.execute(
        "INSERT INTO state (event_id, value) VALUES ($1, $2)", record.event_id, record.value
    )


def _pipeline(pool: asyncpg.Pool, handler: Handler) -> Pipeline:
    return Pipeline(service="it", consumer="it-batch", pool=pool, handler=handler, retry=FAST)


async def test_a_batch_commits_in_one_transaction(endpoints: Endpoints, tmp_path: Path) -> None:
    url = await migrated_database(endpoints, tmp_path)
    records = _records(unique("b"), 5)
    async with pool_for(url) as pool:
        await _pipeline(pool, _write_state).handle_batch(records)
        async with pool.acquire() as conn:
            # now() is the transaction's start: one value means one transaction (savepoints
            # get their own xids, so xmin would not tell).
            starts = {r["at"] for r in await conn.fetch("SELECT at FROM state")}
        assert sorted(r["value"] for r in await state_rows(pool)) == sorted(
            r.value for r in records
        )
        assert len(await inbox_rows(pool)) == 5
    assert len(starts) == 1


async def test_a_permanent_error_dead_letters_only_that_record_and_undoes_only_its_writes(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    url = await migrated_database(endpoints, tmp_path)
    records = _records(unique("b"), 5)

    async def poison_third(conn: asyncpg.Connection, record: Record) -> None:
        await _write_state(conn, record)
        if record.offset == 2:
            raise PermanentError("fails the contract")

    async with pool_for(url) as pool:
        await _pipeline(pool, poison_third).handle_batch(records)
        states = [r["value"] for r in await state_rows(pool)]
        outbox = await outbox_rows(pool)
        inbox = {r["event_id"]: r["status"] for r in await inbox_rows(pool)}
    assert sorted(states) == [b"v0", b"v1", b"v3", b"v4"]
    assert len(outbox) == 1
    assert outbox[0]["topic"] == "it.batch.source.dlq"
    assert outbox[0]["value"] == b"v2"
    assert dict(decode_headers(outbox[0]["headers"]))["carelink_dlq_error"] == b"fails the contract"
    assert inbox[records[2].event_id] == "dead-lettered"
    assert sum(1 for status in inbox.values() if status == "handled") == 4


async def test_duplicates_inside_a_batch_run_the_handler_once(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    url = await migrated_database(endpoints, tmp_path)
    records = _records(unique("b"), 3)
    calls: collections.Counter[str] = collections.Counter()

    async def count(conn: asyncpg.Connection, record: Record) -> None:
        calls[record.event_id] += 1
        await _write_state(conn, record)

    async with pool_for(url) as pool:
        await _pipeline(pool, count).handle_batch([*records, records[0], records[1]])
        await _pipeline(pool, count).handle_batch(records)  # a whole redelivered batch
        assert len(await state_rows(pool)) == 3
    assert set(calls.values()) == {1}


async def test_an_unexpected_error_falls_back_to_one_record_at_a_time(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    url = await migrated_database(endpoints, tmp_path)
    records = _records(unique("b"), 4)

    async def bug_on_second(conn: asyncpg.Connection, record: Record) -> None:
        if record.offset == 1:
            raise KeyError("a bug")
        await _write_state(conn, record)

    async with pool_for(url) as pool:
        await _pipeline(pool, bug_on_second).handle_batch(records)
        states = [r["value"] for r in await state_rows(pool)]
        outbox = await outbox_rows(pool)
    # The others are handled; the buggy one is retried, then dead-lettered with the error.
    assert sorted(states) == [b"v0", b"v2", b"v3"]
    assert [r["value"] for r in outbox] == [b"v1"]


async def test_batch_subscriber_handles_everything_in_order_and_commits_to_the_end(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    url = await migrated_database(endpoints, tmp_path)
    topic = await new_topic(endpoints, partitions=1)
    group = unique("it-batch-group")
    order: list[bytes] = []

    async def write_in_order(conn: asyncpg.Connection, record: Record) -> None:
        await _write_state(conn, record)
        order.append(record.value)

    async with pool_for(url) as pool:
        pipeline = _pipeline(pool, write_in_order)
        await produce(
            endpoints,
            topic,
            [(b"case-1", f"v{i}".encode(), ce_headers(f"{group}-{i}")) for i in range(50)],
        )
        async with running_subscriber(
            endpoints,
            [topic],
            group_id=group,
            handle=pipeline,
            handle_batch=pipeline.handle_batch,
            batch_size=20,
        ):

            async def all_handled() -> bool:
                return len(await state_rows(pool)) == 50

            await wait_until(all_handled, timeout=30, what="all 50 records handled")

            async def committed_to_the_end() -> bool:
                return await committed_offset(endpoints, group, TopicPartition(topic, 0)) == 50

            await wait_until(committed_to_the_end, timeout=15, what="offsets committed")
    assert order == [f"v{i}".encode() for i in range(50)]


async def test_records_a_handler_does_not_want_are_acknowledged_without_a_transaction(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    url = await migrated_database(endpoints, tmp_path)
    records = _records(unique("b"), 6)

    class Picky:
        """Wants only even offsets, like a service using a few care.cases event types."""

        def wants(self, record: Record) -> bool:
            return record.offset % 2 == 0

        async def __call__(self, conn: asyncpg.Connection, record: Record) -> None:
            await _write_state(conn, record)

    async with pool_for(url) as pool:
        pipeline = _pipeline(pool, Picky())
        await pipeline.handle_batch(records)
        await pipeline(records[1])  # one at a time too
        states = sorted(r["value"] for r in await state_rows(pool))
        inbox = await inbox_rows(pool)
    assert states == [b"v0", b"v2", b"v4"]
    assert len(inbox) == 3  # no inbox rows for the unwanted ones: no transaction at all
