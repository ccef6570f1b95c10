"""services.lib.runtime.pipeline: one record, one transaction; retries, dead letters, redelivery.

Most tests call Pipeline directly with hand-made Records (PostgreSQL only); the last one
runs it behind the real FastStream subscriber on the real broker.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest
from aiokafka import TopicPartition

from services.lib.runtime.deadletter import (
    CONSUMER_HEADER,
    ERROR_HEADER,
    FAILED_AT_HEADER,
    SOURCE_OFFSET_HEADER,
    SOURCE_PARTITION_HEADER,
    SOURCE_TOPIC_HEADER,
)
from services.lib.runtime.errors import PermanentError, TransientFailure
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

FAST = RetryPolicy(attempts=3, base_delay_s=0.01, max_delay_s=0.05)
# Original bytes a dead letter must keep: not UTF-8, not JSON.
POISON = b"\xff\xfe{not json\x00"
ODD_HEADER = ("x-hospital-raw", b"\xc3\x28\xa0\xa1")


def _record(event_id: str, *, offset: int = 7, value: bytes = b'{"ok": true}') -> Record:
    return Record(
        topic="it.pipeline.source",
        partition=2,
        offset=offset,
        key=b"case-1",
        value=value,
        headers=ce_headers(event_id, ODD_HEADER),
    )


async def _write_state(conn: asyncpg.Connection, record: Record) -> None:
    await conn.execute(
        "INSERT INTO state (event_id, value) VALUES ($1, $2)", record.event_id, record.value
    )


def _pipeline(pool: asyncpg.Pool, handler: Handler, retry: RetryPolicy = FAST) -> Pipeline:
    return Pipeline(service="it", consumer="it-consumer", pool=pool, handler=handler, retry=retry)


async def test_success_writes_state_and_inbox_row_in_one_transaction(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    url = await migrated_database(endpoints, tmp_path)
    record = _record(unique("evt"))
    async with pool_for(url) as pool:
        await _pipeline(pool, _write_state)(record)
        async with pool.acquire() as conn:
            state_xmin = await conn.fetchval("SELECT xmin::text FROM state")
            inbox_xmin = await conn.fetchval("SELECT xmin::text FROM inbox")
        states, inboxes, outboxes = (
            await state_rows(pool),
            await inbox_rows(pool),
            await outbox_rows(pool),
        )
    assert [tuple(r) for r in states] == [(record.event_id, record.value)]
    assert [tuple(r) for r in inboxes] == [("it-consumer", record.event_id, "handled")]
    assert state_xmin == inbox_xmin  # written by the same transaction
    assert outboxes == []


async def test_handler_raising_after_writing_state_leaves_no_state_and_no_inbox_row(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    url = await migrated_database(endpoints, tmp_path)

    async def write_then_fail(conn: asyncpg.Connection, record: Record) -> None:
        await _write_state(conn, record)
        raise ConnectionResetError("database went away mid-handler")

    async with pool_for(url) as pool:
        with pytest.raises(TransientFailure):
            await _pipeline(pool, write_then_fail)(_record(unique("evt")))
        assert await state_rows(pool) == []
        assert await inbox_rows(pool) == []


async def test_redelivered_record_with_the_same_ce_id_runs_the_handler_once(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    url = await migrated_database(endpoints, tmp_path)
    calls: list[int] = []

    async def handler(conn: asyncpg.Connection, record: Record) -> None:
        calls.append(record.offset)
        await _write_state(conn, record)

    event_id = unique("evt")
    async with pool_for(url) as pool:
        pipeline = _pipeline(pool, handler)
        await pipeline(_record(event_id, offset=7))
        await pipeline(_record(event_id, offset=7))  # redelivered: offset not committed
        await pipeline(_record(event_id, offset=42))  # republished by the producer
        states = await state_rows(pool)
    assert calls == [7]
    assert [r["event_id"] for r in states] == [event_id]


async def test_permanent_error_dead_letters_original_bytes_and_headers_and_rolls_back(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    url = await migrated_database(endpoints, tmp_path)
    calls = 0

    async def write_then_reject(conn: asyncpg.Connection, record: Record) -> None:
        nonlocal calls
        calls += 1
        await _write_state(conn, record)
        raise PermanentError("referral.birth_date: not a date")

    record = _record(unique("evt"), value=POISON)
    async with pool_for(url) as pool:
        await _pipeline(pool, write_then_reject)(record)
        outboxes, states, inboxes = (
            await outbox_rows(pool),
            await state_rows(pool),
            await inbox_rows(pool),
        )
    assert calls == 1  # permanent: not retried
    assert states == []
    assert [tuple(r) for r in inboxes] == [("it-consumer", record.event_id, "dead-lettered")]
    [dead] = outboxes
    assert dead["topic"] == "it.pipeline.source.dlq"
    assert dead["key"] == b"case-1"
    assert dead["value"] == POISON
    headers = decode_headers(dead["headers"])
    assert headers[: len(record.headers)] == list(record.headers)
    extra = dict(headers[len(record.headers) :])
    assert extra[ERROR_HEADER] == b"referral.birth_date: not a date"
    assert extra[SOURCE_TOPIC_HEADER] == b"it.pipeline.source"
    assert extra[SOURCE_PARTITION_HEADER] == b"2"
    assert extra[SOURCE_OFFSET_HEADER] == b"7"
    assert extra[CONSUMER_HEADER] == b"it-consumer"
    assert FAILED_AT_HEADER in extra


async def test_unexpected_exception_is_retried_attempts_times_then_dead_lettered(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    url = await migrated_database(endpoints, tmp_path)
    calls = 0

    async def buggy(conn: asyncpg.Connection, record: Record) -> None:
        nonlocal calls
        calls += 1
        await _write_state(conn, record)
        raise KeyError("district")

    record = _record(unique("evt"))
    async with pool_for(url) as pool:
        await _pipeline(pool, buggy, RetryPolicy(attempts=4, base_delay_s=0.01))(record)
        outboxes, states, inboxes = (
            await outbox_rows(pool),
            await state_rows(pool),
            await inbox_rows(pool),
        )
    assert calls == 4
    assert states == []
    assert [tuple(r) for r in inboxes] == [("it-consumer", record.event_id, "dead-lettered")]
    [dead] = outboxes
    assert dead["topic"] == "it.pipeline.source.dlq"
    assert dict(decode_headers(dead["headers"]))[ERROR_HEADER] == b"KeyError: 'district'"


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(lambda: ConnectionRefusedError(111, "refused"), id="connection-refused"),
        pytest.param(
            lambda: asyncpg.CannotConnectNowError("the database system is starting up"),
            id="cannot-connect-now",
        ),
    ],
)
async def test_persistent_transient_error_raises_transient_failure_without_dead_letter_or_inbox(
    endpoints: Endpoints, tmp_path: Path, fault: Callable[[], Exception]
) -> None:
    url = await migrated_database(endpoints, tmp_path)
    calls = 0

    async def unavailable(conn: asyncpg.Connection, record: Record) -> None:
        nonlocal calls
        calls += 1
        await _write_state(conn, record)
        raise fault()

    async with pool_for(url) as pool:
        pipeline = _pipeline(pool, unavailable)
        with pytest.raises(TransientFailure):
            await pipeline(_record(unique("evt")))
        outboxes, states, inboxes = (
            await outbox_rows(pool),
            await state_rows(pool),
            await inbox_rows(pool),
        )
    assert calls == FAST.attempts
    assert (outboxes, states, inboxes) == ([], [], [])
    assert pipeline.last_transient_error is not None


async def test_transient_error_clearing_on_the_second_attempt_ends_handled(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    url = await migrated_database(endpoints, tmp_path)
    calls = 0

    async def flaky(conn: asyncpg.Connection, record: Record) -> None:
        nonlocal calls
        calls += 1
        await _write_state(conn, record)
        if calls == 1:
            raise ConnectionRefusedError(111, "refused")

    record = _record(unique("evt"))
    async with pool_for(url) as pool:
        pipeline = _pipeline(pool, flaky)
        await pipeline(record)
        outboxes, states, inboxes = (
            await outbox_rows(pool),
            await state_rows(pool),
            await inbox_rows(pool),
        )
    assert calls == 2
    assert [r["event_id"] for r in states] == [record.event_id]
    assert [tuple(r) for r in inboxes] == [("it-consumer", record.event_id, "handled")]
    assert outboxes == []
    assert pipeline.last_transient_error is None


async def test_oversized_record_redelivered_is_dead_lettered_once(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    url = await migrated_database(endpoints, tmp_path)
    calls = 0

    async def handler(conn: asyncpg.Connection, record: Record) -> None:
        nonlocal calls
        calls += 1

    record = _record(unique("evt"), value=b"x" * 2000)
    async with pool_for(url) as pool:
        pipeline = Pipeline(
            service="it",
            consumer="it-consumer",
            pool=pool,
            handler=handler,
            retry=FAST,
            max_record_bytes=1000,
        )
        await pipeline(record)
        await pipeline(record)  # redelivered: the offset commit was lost
        outboxes, inboxes = await outbox_rows(pool), await inbox_rows(pool)
    assert calls == 0
    assert [r["topic"] for r in outboxes] == ["it.pipeline.source.dlq"]
    assert [tuple(r) for r in inboxes] == [("it-consumer", record.event_id, "dead-lettered")]


async def test_subscriber_redelivers_a_transiently_failing_record_and_keeps_partition_order(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    url = await migrated_database(endpoints, tmp_path)
    topic = await new_topic(endpoints, partitions=1)
    group = unique("it-group")
    partition = TopicPartition(topic, 0)
    failing_offset, failing_deliveries = 1, 3
    deliveries: collections.Counter[int] = collections.Counter()
    handled: list[int] = []
    committed_while_failing: list[int | None] = []

    async def handler(conn: asyncpg.Connection, record: Record) -> None:
        if record.offset == failing_offset and deliveries[record.offset] <= failing_deliveries:
            committed_while_failing.append(await committed_offset(endpoints, group, partition))
            raise ConnectionRefusedError(111, "database unavailable")
        await _write_state(conn, record)
        handled.append(record.offset)

    async with pool_for(url) as pool:
        pipeline = _pipeline(pool, handler, RetryPolicy(attempts=2, base_delay_s=0.01))

        async def deliver(record: Record) -> None:
            deliveries[record.offset] += 1
            await pipeline(record)

        await produce(
            endpoints,
            topic,
            [(b"case-1", f"v{i}".encode(), ce_headers(f"{group}-{i}")) for i in range(5)],
        )
        async with running_subscriber(endpoints, [topic], group_id=group, handle=deliver):

            async def all_handled() -> bool:
                return len(handled) == 5

            await wait_until(all_handled, timeout=30, what="all five records handled")

            async def committed_to_the_end() -> bool:
                return await committed_offset(endpoints, group, partition) == 5

            await wait_until(committed_to_the_end, timeout=10, what="offset 5 committed")
        states = await state_rows(pool)

    assert deliveries[failing_offset] == failing_deliveries + 1  # redelivered, not skipped
    assert handled == [0, 1, 2, 3, 4]  # the records after it waited for it
    assert [deliveries[i] for i in (0, 2, 3, 4)] == [1, 1, 1, 1]
    # Two attempts per delivery; never committed past the failing record.
    assert len(committed_while_failing) == 2 * failing_deliveries
    assert all(c is not None and c <= failing_offset for c in committed_while_failing)
    assert [r["value"] for r in states] == [f"v{i}".encode() for i in range(5)]
