"""services.lib.runtime.outbox: enqueue in the handler's transaction, OutboxRelay publishes."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from services.lib.runtime import outbox
from services.tools.localinfra import Endpoints, Infrastructure
from tests.integration.runtime_helpers import (
    make_relay,
    migrated_database,
    new_topic,
    outbox_rows,
    pool_for,
    read_records,
    running_relay,
    wait_until,
)

pytestmark = pytest.mark.integration

ODD_HEADER = ("x-raw", b"\xff\x00\xfe\x80 not utf-8")


async def _enqueue(
    pool: asyncpg.Pool, topic: str, values: list[bytes], *, key: bytes | None = b"case-1"
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        for value in values:
            await outbox.enqueue(
                conn, topic=topic, key=key, value=value, headers=[("ce_id", value)]
            )


def _all_published(pool: asyncpg.Pool, count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        rows = await outbox_rows(pool)
        return len(rows) == count and all(r["published_at"] for r in rows)

    return check


async def test_committed_rows_are_published_in_id_order_with_keys_and_headers_then_marked(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    url = await migrated_database(endpoints, tmp_path)
    topic = await new_topic(endpoints)
    rows = [
        (b"case-1", b"first", [("ce_id", b"e1"), ODD_HEADER]),
        (None, b"\x00\xffbinary value", [("ce_id", b"e2")]),
        (b"case-2", b"third", []),
        (b"case-1", b"fourth", [("ce_id", b"e4"), ("empty", b""), ODD_HEADER]),
    ]
    async with pool_for(url) as pool:
        async with pool.acquire() as conn, conn.transaction():
            for key, value, headers in rows:
                await outbox.enqueue(conn, topic=topic, key=key, value=value, headers=headers)
        async with running_relay(endpoints, url):
            published = await read_records(endpoints, topic, len(rows), linger=0.5)
            await wait_until(_all_published(pool, len(rows)), timeout=10, what="rows marked")
        stored = await outbox_rows(pool)
    assert [(r.key, r.value, list(r.headers)) for r in published] == [
        (key, value, headers) for key, value, headers in rows
    ]
    assert [r["value"] for r in stored] == [value for _, value, _ in rows]  # id order
    assert all(r["published_at"] is not None for r in stored)


async def test_rows_of_a_rolled_back_transaction_are_never_published(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    url = await migrated_database(endpoints, tmp_path)
    topic = await new_topic(endpoints)
    async with pool_for(url) as pool, running_relay(endpoints, url) as relay:
        await relay.wait_active()
        await _enqueue(pool, topic, [b"before"])
        async with pool.acquire() as conn:
            transaction = conn.transaction()
            await transaction.start()
            await outbox.enqueue(conn, topic=topic, key=b"case-1", value=b"rolled back", headers=[])
            await transaction.rollback()
        await _enqueue(pool, topic, [b"after"])
        # In id order, "after" comes behind the rolled-back row: once it is there, the
        # rolled-back one would have been too.
        published = await read_records(endpoints, topic, 2, linger=0.5)
        stored = await outbox_rows(pool)
    assert [r.value for r in published] == [b"before", b"after"]
    assert [r["value"] for r in stored] == [b"before", b"after"]


async def test_notify_wakes_the_relay_quickly_despite_a_long_poll_interval(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    url = await migrated_database(endpoints, tmp_path)
    topic = await new_topic(endpoints)
    async with pool_for(url) as pool, running_relay(endpoints, url, poll_interval_s=30) as relay:
        await relay.wait_active()
        await _enqueue(pool, topic, [b"warm-up"])  # published by the first batch or by NOTIFY
        await read_records(endpoints, topic, 1)
        await asyncio.sleep(0.3)  # the relay is now waiting: only NOTIFY can wake it early
        started = time.monotonic()
        await _enqueue(pool, topic, [b"notified"])
        published = await read_records(endpoints, topic, 2, timeout=5)
        elapsed = time.monotonic() - started
    assert [r.value for r in published] == [b"warm-up", b"notified"]
    assert elapsed < 5


async def test_frozen_broker_nothing_marked_published_until_acknowledged_then_everything(
    infrastructure: Infrastructure, endpoints: Endpoints, tmp_path: Path
) -> None:
    if endpoints.kind != "embedded":
        pytest.skip("freezing the broker needs the embedded servers")
    url = await migrated_database(endpoints, tmp_path)
    topic = await new_topic(endpoints)
    # A long poll interval: what is enqueued during the freeze must go out on NOTIFY.
    async with pool_for(url) as pool, running_relay(endpoints, url, poll_interval_s=30) as relay:
        await relay.wait_active()
        await _enqueue(pool, topic, [b"warm-up"])  # producer connected, metadata known
        await wait_until(_all_published(pool, 1), timeout=10, what="warm-up published")
        infrastructure.freeze_broker()
        try:
            await _enqueue(pool, topic, [b"a1", b"a2", b"a3"])
            await asyncio.sleep(1.5)  # the relay has sent these and waits for the ack
            await _enqueue(pool, topic, [b"b1", b"b2"])  # notified while the relay waits
            await asyncio.sleep(1.5)
            during = await outbox_rows(pool)
        finally:
            infrastructure.thaw_broker()
        await wait_until(_all_published(pool, 6), timeout=15, what="everything published")
        published = await read_records(endpoints, topic, 6, linger=0.5)
    assert [r["value"] for r in during if r["published_at"] is not None] == [b"warm-up"]
    assert len(during) == 6
    assert [r.value for r in published] == [b"warm-up", b"a1", b"a2", b"a3", b"b1", b"b2"]


async def test_two_relays_one_active_and_the_other_takes_over_when_it_stops(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    url = await migrated_database(endpoints, tmp_path)
    topic = await new_topic(endpoints)
    first = make_relay(endpoints, url, poll_interval_s=0.2)
    second = make_relay(endpoints, url, poll_interval_s=0.2)
    async with pool_for(url) as pool:
        await first.start()
        try:
            await first.wait_active()
            await second.start()
            try:
                both_seen: list[tuple[bool, bool]] = []
                for _ in range(15):  # the standby retries the lock every 0.2 s
                    both_seen.append((first.relay.active, second.relay.active))
                    await asyncio.sleep(0.1)
                await _enqueue(pool, topic, [b"one", b"two"])
                await wait_until(_all_published(pool, 2), timeout=10, what="first batch")
                assert not second.relay.active

                await first.stop()
                await _enqueue(pool, topic, [b"three", b"four"])  # left for the standby
                await second.wait_active(timeout=5)
                await wait_until(_all_published(pool, 4), timeout=10, what="second batch")
                published = await read_records(endpoints, topic, 4, linger=0.5)
            finally:
                await second.stop()
        finally:
            await first.stop()
    assert set(both_seen) == {(True, False)}
    assert [r.value for r in published] == [b"one", b"two", b"three", b"four"]


async def test_per_key_order_is_preserved_across_many_rows_on_a_multi_partition_topic(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    url = await migrated_database(endpoints, tmp_path)
    partitions, keys, per_key = 6, 12, 25
    topic = await new_topic(endpoints, partitions=partitions)
    async with pool_for(url) as pool:
        # Interleaved keys over many transactions; small relay batches cross boundaries.
        for seq in range(0, per_key, 5):
            async with pool.acquire() as conn, conn.transaction():
                for n in range(seq, seq + 5):
                    for k in range(keys):
                        await outbox.enqueue(
                            conn,
                            topic=topic,
                            key=f"case-{k}".encode(),
                            value=f"case-{k}:{n}".encode(),
                            headers=[],
                        )
        async with running_relay(endpoints, url, batch_size=37):
            published = await read_records(
                endpoints, topic, keys * per_key, partitions=partitions, timeout=30, linger=0.5
            )
    by_key: dict[bytes, list[int]] = collections.defaultdict(list)
    partitions_of: dict[bytes, set[int]] = collections.defaultdict(set)
    for record in published:  # per partition, in offset order
        by_key[record.key].append(int(record.value.rsplit(b":", 1)[1]))
        partitions_of[record.key].add(record.partition)
    assert len(published) == keys * per_key
    assert {key: seqs for key, seqs in by_key.items()} == {
        f"case-{k}".encode(): list(range(per_key)) for k in range(keys)
    }
    assert all(len(p) == 1 for p in partitions_of.values())
    assert len({p for ps in partitions_of.values() for p in ps}) > 1
