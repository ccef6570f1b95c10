"""services.lib.runtime.inbox: one claim per (consumer, event), dead letters replayable."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from services.lib.runtime import inbox
from services.tools.localinfra import Endpoints
from tests.integration.runtime_helpers import inbox_rows, migrated_database, pool_for, unique

pytestmark = pytest.mark.integration

SOURCE = "carelink/intake"  # the ce_source half of the event's identity


async def test_claim_is_true_once_then_false_for_the_same_consumer_and_event(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    url = await migrated_database(endpoints, tmp_path)
    event_id = unique("evt")
    async with pool_for(url) as pool:
        async with pool.acquire() as conn:
            first = await inbox.claim(conn, "referral", SOURCE, event_id)
            second = await inbox.claim(conn, "referral", SOURCE, event_id)
        async with pool.acquire() as conn:
            third = await inbox.claim(conn, "referral", SOURCE, event_id)
        rows = await inbox_rows(pool)
    assert (first, second, third) == (True, False, False)
    assert [tuple(r) for r in rows] == [("referral", event_id, "handled")]


async def test_concurrent_claims_on_two_connections_have_exactly_one_winner(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    url = await migrated_database(endpoints, tmp_path)
    event_id = unique("evt")
    both_claimed = asyncio.Barrier(2)

    async def claim_in_transaction(conn: asyncpg.Connection) -> bool:
        async with conn.transaction():
            await both_claimed.wait()  # start together
            won = await inbox.claim(conn, "referral", SOURCE, event_id)
            await asyncio.sleep(0.3)  # hold the row: the other claim has to wait for us
            return won

    first, second = await asyncpg.connect(url), await asyncpg.connect(url)
    try:
        results = await asyncio.wait_for(
            asyncio.gather(claim_in_transaction(first), claim_in_transaction(second)), 15
        )
        count = await first.fetchval("SELECT count(*) FROM inbox WHERE event_id = $1", event_id)
    finally:
        await first.close()
        await second.close()
    assert sorted(results) == [False, True]
    assert count == 1


async def test_different_consumers_claim_the_same_event_independently(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    url = await migrated_database(endpoints, tmp_path)
    event_id = unique("evt")
    async with pool_for(url) as pool, pool.acquire() as conn:
        results = [
            await inbox.claim(conn, "referral", SOURCE, event_id),
            await inbox.claim(conn, "scheduling", SOURCE, event_id),
            await inbox.claim(conn, "referral", SOURCE, event_id),
            await inbox.claim(conn, "scheduling", SOURCE, event_id),
        ]
        await inbox.mark_dead_lettered(conn, "outcome", SOURCE, event_id)
        # One consumer's dead letter does not touch another's handled row.
        assert not await inbox.claim(conn, "referral", SOURCE, event_id, replay=True)
        rows = await inbox_rows(pool)
    assert results == [True, True, False, False]
    assert [tuple(r) for r in rows] == [
        ("outcome", event_id, "dead-lettered"),
        ("referral", event_id, "handled"),
        ("scheduling", event_id, "handled"),
    ]


async def test_dead_lettered_event_is_not_claimable_by_redelivery_but_is_by_replay(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    url = await migrated_database(endpoints, tmp_path)
    event_id = unique("evt")
    async with pool_for(url) as pool, pool.acquire() as conn:
        await inbox.mark_dead_lettered(conn, "intake", SOURCE, event_id)
        redelivered = await inbox.claim(conn, "intake", SOURCE, event_id)
        status_after_redelivery = await conn.fetchval(
            "SELECT status FROM inbox WHERE event_id = $1", event_id
        )
        replayed = await inbox.claim(conn, "intake", SOURCE, event_id, replay=True)
        replayed_again = await inbox.claim(conn, "intake", SOURCE, event_id, replay=True)
        rows = await inbox_rows(pool)
    assert redelivered is False
    assert status_after_redelivery == "dead-lettered"
    assert replayed is True
    assert replayed_again is False  # once handled, a second replay is a duplicate
    assert [tuple(r) for r in rows] == [("intake", event_id, "handled")]


async def test_marking_an_event_dead_lettered_twice_keeps_one_row(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    url = await migrated_database(endpoints, tmp_path)
    event_id = unique("evt")
    async with pool_for(url) as pool, pool.acquire() as conn:
        await inbox.mark_dead_lettered(conn, "intake", SOURCE, event_id)
        await inbox.mark_dead_lettered(conn, "intake", SOURCE, event_id)
        rows = await inbox_rows(pool)
    assert [tuple(r) for r in rows] == [("intake", event_id, "dead-lettered")]
