"""services.lib.runtime.outbox.collected: a transaction's outbox rows written with one
INSERT at its end (the batch path), and the relay sending them in order per key."""

from __future__ import annotations

import collections
from pathlib import Path

import asyncpg
import pytest

from services.lib.runtime import outbox
from services.lib.runtime.outbox import decode_headers
from services.tools.localinfra import Endpoints
from tests.integration.runtime_helpers import (
    migrated_database,
    new_topic,
    outbox_rows,
    pool_for,
    read_records,
    running_relay,
)

pytestmark = pytest.mark.integration


async def test_collected_rows_are_written_at_the_end_of_the_block_in_enqueue_order(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    url = await migrated_database(endpoints, tmp_path)
    async with pool_for(url) as pool, pool.acquire() as conn, conn.transaction():
        async with outbox.collected(conn):
            for n in range(5):
                await outbox.enqueue(
                    conn,
                    topic="it.collected",
                    key=None if n == 2 else f"case-{n % 2}".encode(),
                    value=f"v{n}".encode(),
                    headers=[("ce_id", f"e{n}".encode()), ("raw", b"\xff\x00")],
                )
            inside = await conn.fetchval("SELECT count(*) FROM outbox")
        rows = await conn.fetch("SELECT key, value, headers FROM outbox ORDER BY id")
    assert inside == 0
    assert [r["value"] for r in rows] == [b"v0", b"v1", b"v2", b"v3", b"v4"]
    assert [r["key"] for r in rows] == [b"case-0", b"case-1", None, b"case-1", b"case-0"]
    assert [decode_headers(r["headers"])[:2] for r in rows][3] == [
        ("ce_id", b"e3"),
        ("raw", b"\xff\x00"),
    ]


async def test_a_failing_block_writes_nothing_and_other_connections_write_as_usual(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    url = await migrated_database(endpoints, tmp_path)

    async def failing_batch(pool: asyncpg.Pool) -> None:
        async with (
            pool.acquire() as conn,
            pool.acquire() as other,
            conn.transaction(),
            outbox.collected(conn),
        ):
            await outbox.enqueue(conn, topic="it.collected", key=b"k", value=b"lost", headers=[])
            # Not the collecting connection: written at once (autocommit).
            await outbox.enqueue(other, topic="it.collected", key=b"k", value=b"kept", headers=[])
            raise RuntimeError("the batch fails")

    async with pool_for(url) as pool:
        with pytest.raises(RuntimeError):
            await failing_batch(pool)
        rows = await outbox_rows(pool)
    assert [r["value"] for r in rows] == [b"kept"]


async def test_the_relay_sends_collected_batches_in_order_per_key(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    url = await migrated_database(endpoints, tmp_path)
    partitions, keys, per_key = 4, 8, 12
    topic = await new_topic(endpoints, partitions=partitions)
    async with pool_for(url) as pool:
        for seq in range(0, per_key, 4):  # three transactions, keys interleaved in each
            async with pool.acquire() as conn, conn.transaction(), outbox.collected(conn):
                for n in range(seq, seq + 4):
                    for k in range(keys):
                        await outbox.enqueue(
                            conn,
                            topic=topic,
                            key=f"case-{k}".encode(),
                            value=f"case-{k}:{n}".encode(),
                            headers=[],
                        )
        async with running_relay(endpoints, url, batch_size=29):
            published = await read_records(
                endpoints, topic, keys * per_key, partitions=partitions, timeout=30, linger=0.5
            )
    by_key: dict[bytes, list[int]] = collections.defaultdict(list)
    for record in published:  # per partition, in offset order
        by_key[record.key].append(int(record.value.rsplit(b":", 1)[1]))
    assert len(published) == keys * per_key
    assert dict(by_key) == {f"case-{k}".encode(): list(range(per_key)) for k in range(keys)}
