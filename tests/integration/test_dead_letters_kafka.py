"""Dead letters end to end: subscriber + Pipeline -> outbox -> relay -> `<topic>.dlq`."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest
from aiokafka import TopicPartition

from contracts.topics import dead_letters
from services.lib.runtime.deadletter import (
    CONSUMER_HEADER,
    ERROR_HEADER,
    SOURCE_OFFSET_HEADER,
    SOURCE_PARTITION_HEADER,
    SOURCE_TOPIC_HEADER,
)
from services.lib.runtime.errors import PermanentError
from services.lib.runtime.pipeline import Pipeline, Record, RetryPolicy
from services.tools.localinfra import Endpoints
from tests.integration.runtime_helpers import (
    ce_headers,
    committed_offset,
    inbox_rows,
    migrated_database,
    new_topic,
    pool_for,
    produce,
    read_records,
    running_relay,
    running_subscriber,
    state_rows,
    unique,
    wait_until,
)

pytestmark = pytest.mark.integration

POISON = b"\xff\xfe<<not json>>\x00"


@pytest.mark.parametrize(
    "extra_header",
    [
        pytest.param(("x-hospital-ref", "병원-42".encode()), id="utf8-headers"),
        pytest.param(
            ("x-hospital-raw", b"\xa0\xa1\xff"),
            id="non-utf8-header",
        ),
    ],
)
async def test_poison_record_lands_on_the_dlq_with_original_bytes_and_headers_and_partition_moves_on(
    endpoints: Endpoints, tmp_path: Path, extra_header: tuple[str, bytes]
) -> None:
    url = await migrated_database(endpoints, tmp_path)
    topic = await new_topic(endpoints, partitions=1, with_dlq=True)
    group = unique("it-group")
    handled: list[int] = []

    async def handler(conn: asyncpg.Connection, record: Record) -> None:
        if not record.value.startswith(b"{"):
            raise PermanentError("record is not JSON")
        await conn.execute(
            "INSERT INTO state (event_id, value) VALUES ($1, $2)", record.event_id, record.value
        )
        handled.append(record.offset)

    poison_headers = ce_headers(f"{group}-poison", extra_header)
    sent = [
        (b"case-1", POISON, poison_headers),
        (b"case-1", b'{"n": 1}', ce_headers(f"{group}-good")),
    ]
    async with pool_for(url) as pool:
        pipeline = Pipeline(
            service="it",
            consumer="it-consumer",
            pool=pool,
            handler=handler,
            retry=RetryPolicy(attempts=2, base_delay_s=0.01),
        )
        async with running_relay(endpoints, url, poll_interval_s=0.5):
            await produce(endpoints, topic, sent)
            async with running_subscriber(endpoints, [topic], group_id=group, handle=pipeline):

                async def good_record_handled() -> bool:
                    return handled == [1]

                await wait_until(good_record_handled, timeout=30, what="good record handled")

                async def committed_past_both() -> bool:
                    tp = TopicPartition(topic, 0)
                    return await committed_offset(endpoints, group, tp) == 2

                await wait_until(committed_past_both, timeout=10, what="offset 2 committed")
            inboxes = await inbox_rows(pool)
            # Written before the offset moved on: checked first, a skipped record fails fast.
            assert {r["event_id"]: r["status"] for r in inboxes} == {
                f"{group}-poison": "dead-lettered",
                f"{group}-good": "handled",
            }
            [dead] = await read_records(endpoints, dead_letters(topic), 1, linger=0.5)
        states = await state_rows(pool)

    assert dead.key == b"case-1"
    assert dead.value == POISON
    headers = list(dead.headers)
    assert headers[: len(poison_headers)] == list(poison_headers)
    extra = dict(headers[len(poison_headers) :])
    assert extra[ERROR_HEADER] == b"record is not JSON"
    assert extra[SOURCE_TOPIC_HEADER] == topic.encode()
    assert extra[SOURCE_PARTITION_HEADER] == b"0"
    assert extra[SOURCE_OFFSET_HEADER] == b"0"
    assert extra[CONSUMER_HEADER] == b"it-consumer"
    assert [r["value"] for r in states] == [b'{"n": 1}']
