"""Regression: one row the broker can never take (found by the hostile corpus: a keyless
record too large for its dead letter) must not stop every later row of the outbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.lib.runtime import outbox
from services.lib.runtime.deadletter import TRUNCATED_HEADER, send_to_dead_letters
from services.lib.runtime.outbox import decode_headers
from services.tools.localinfra import Endpoints
from tests.integration.runtime_helpers import (
    migrated_database,
    new_topic,
    outbox_rows,
    pool_for,
    read_records,
    running_relay,
    wait_until,
)

pytestmark = pytest.mark.integration


async def test_a_row_too_large_for_the_broker_is_set_aside_and_later_rows_still_go(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    url = await migrated_database(endpoints, tmp_path)
    topic = await new_topic(endpoints)
    too_large = b"x" * 3_000_000  # over the relay producer's max_request_size
    async with pool_for(url) as pool:
        async with pool.acquire() as conn, conn.transaction():
            await outbox.enqueue(conn, topic=topic, key=b"k", value=b"before", headers=[])
            await outbox.enqueue(conn, topic=topic, key=b"k", value=too_large, headers=[])
            await outbox.enqueue(conn, topic=topic, key=b"k", value=b"after", headers=[])
        async with running_relay(endpoints, url):
            published = await read_records(endpoints, topic, 2, linger=0.5)

            async def settled() -> bool:
                rows = await outbox_rows(pool)
                return sum(r["published_at"] is not None for r in rows) == 2

            await wait_until(settled, timeout=15, what="the two small rows published")
        async with pool.acquire() as conn:
            aside = await conn.fetch("SELECT value, error FROM outbox WHERE failed_at IS NOT NULL")
            backlog = await outbox.backlog(conn)
    assert [r.value for r in published] == [b"before", b"after"]
    assert [len(r["value"]) for r in aside] == [len(too_large)]
    assert "MessageSizeTooLarge" in aside[0]["error"]
    assert backlog == 0


async def test_a_dead_letter_of_an_oversized_record_keeps_its_first_bytes_and_says_so(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    url = await migrated_database(endpoints, tmp_path)
    original = b"y" * 1_500_000
    async with pool_for(url) as pool:
        async with pool.acquire() as conn, conn.transaction():
            await send_to_dead_letters(
                conn,
                consumer="it",
                event_source="it/source",
                event_id="e-1",
                topic="it.src",
                partition=0,
                offset=9,
                key=None,
                value=original,
                headers=[("ce_id", b"e-1")],
                error="too large",
                max_bytes=1_000_000,
            )
        (row,) = await outbox_rows(pool)
    headers = dict(decode_headers(row["headers"]))
    assert len(row["value"]) < 1_000_000
    assert original.startswith(row["value"])
    assert headers[TRUNCATED_HEADER] == str(len(original)).encode()
    assert headers["carelink_dlq_offset"] == b"9"
