"""The relay never lets a later outbox row overtake an earlier one (issue 8).

When the broker does not acknowledge one row of a batch (a passing fault), the rows
after it are not marked published even if they were acknowledged: they go out again
after the failed row, so a reader that drops repeats still sees outbox order.

The fault is injected by wrapping the relay producer's `send` for one row (its
future fails with a retriable error once); the broker is real.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import RequestTimedOutError

from services.lib.runtime import outbox
from services.tools.localinfra import Endpoints
from tests.integration.runtime_helpers import (
    make_relay,
    migrated_database,
    new_topic,
    outbox_rows,
    pool_for,
    read_records,
    wait_until,
)

pytestmark = pytest.mark.integration

VALUES = [b"row-0", b"row-1", b"row-2", b"row-3"]
FAILING = b"row-1"


async def test_rows_after_an_unacknowledged_row_are_sent_again_after_it(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    url = await migrated_database(endpoints, tmp_path)
    topic = await new_topic(endpoints)
    running = make_relay(endpoints, url, poll_interval_s=0.2)
    real_send = running.producer.send
    failures = 0

    async def send_failing_once(topic: str, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        nonlocal failures
        if kwargs.get("value") == FAILING and failures == 0:
            failures += 1
            # What aiokafka hands back when the broker did not answer in time.
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            future.set_exception(RequestTimedOutError())
            return future
        return await real_send(topic, *args, **kwargs)

    running.producer.send = send_failing_once  # type: ignore[method-assign]
    async with pool_for(url) as pool:
        # One transaction: the four rows are one batch of the relay, all of one case.
        async with pool.acquire() as conn, conn.transaction():
            for value in VALUES:
                await outbox.enqueue(
                    conn, topic=topic, key=b"case-1", value=value, headers=[("ce_id", value)]
                )
        await running.start()
        try:

            async def all_published() -> bool:
                rows = await outbox_rows(pool)
                return all(r["published_at"] is not None for r in rows)

            await wait_until(all_published, timeout=20, what="every row published")
        finally:
            await running.stop()
        stored = await outbox_rows(pool)
    sent = [r.value for r in await read_records(endpoints, topic, len(VALUES), linger=1.0)]

    assert failures == 1
    # Read from the failed row on, the topic holds the rows in outbox order: the rows
    # after it were published again after it, not left ahead of it.
    assert sent[sent.index(FAILING) :] == VALUES[VALUES.index(FAILING) :]
    # And no row was marked published before an earlier one.
    marked = [r["published_at"] for r in stored]
    assert marked == sorted(marked)
