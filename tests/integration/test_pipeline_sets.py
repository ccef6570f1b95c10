"""The batch's set path (issue 12): one inbox claim for the whole batch
(`inbox.claim_many`), and a handler's `handle_many` given every new record at once,
with records it sets aside dead-lettered and the rest kept."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import asyncpg
import pytest

from services.lib.runtime import inbox, outbox
from services.lib.runtime.deadletter import REPLAY_HEADER
from services.lib.runtime.pipeline import Pipeline, Record, RetryPolicy, Scope
from services.tools.localinfra import Endpoints
from tests.integration.runtime_helpers import (
    ce_headers,
    inbox_rows,
    migrated_database,
    outbox_rows,
    pool_for,
    state_rows,
    unique,
)

pytestmark = pytest.mark.integration

SOURCE = "it/test"


async def test_claim_many_claims_new_events_once_and_respects_legacy_and_handled_rows(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    url = await migrated_database(endpoints, tmp_path)
    new, handled, legacy, sourceless = (unique(n) for n in ("new", "handled", "legacy", "nosrc"))
    async with pool_for(url) as pool, pool.acquire() as conn:
        assert await inbox.claim(conn, "c", SOURCE, handled)
        # A row from before sources were part of the key: that ce_id counts as handled.
        await conn.execute(
            "INSERT INTO inbox (consumer, source, event_id) VALUES ('c', '', $1)", legacy
        )
        claimed = await inbox.claim_many(
            conn,
            "c",
            [(SOURCE, new), (SOURCE, handled), (SOURCE, legacy), ("", sourceless), (SOURCE, new)],
        )
        again = await inbox.claim_many(conn, "c", [(SOURCE, new), ("", sourceless)])
        other_consumer = await inbox.claim_many(conn, "d", [(SOURCE, handled)])
    assert claimed == {(SOURCE, new), ("", sourceless)}
    assert again == set()
    assert other_consumer == {(SOURCE, handled)}


def _records(prefix: str, values: Sequence[bytes]) -> list[Record]:
    return [
        Record(
            topic="it.sets.source",
            partition=0,
            offset=i,
            key=b"case-1",
            value=value,
            headers=ce_headers(f"{prefix}-{i}"),
        )
        for i, value in enumerate(values)
    ]


class SetHandler:
    """Writes every good record's value to `state` with one statement and emits one
    outbox row per record; sets aside the ones whose value is b"bad"."""

    def __init__(self) -> None:
        self.batches: list[list[bytes]] = []
        self.single: list[bytes] = []

    async def __call__(self, conn: asyncpg.Connection, record: Record) -> None:
        self.single.append(record.value)
        await conn.execute(
            "INSERT INTO state (event_id, value) VALUES ($1, $2)", record.event_id, record.value
        )

    async def handle_many(
        self, conn: asyncpg.Connection, records: Sequence[Record], scope: Scope
    ) -> dict[int, str]:
        self.batches.append([r.value for r in records])
        good = [r for r in records if r.value != b"bad"]
        await conn.execute(
            "INSERT INTO state (event_id, value) SELECT * FROM unnest($1::text[], $2::bytea[])",
            [r.event_id for r in good],
            [r.value for r in good],
        )
        for record in good:
            with scope(record):
                await outbox.enqueue(
                    conn, topic="it.sets.out", key=record.key, value=record.value, headers=[]
                )
        return {i: "not a record we can use" for i, r in enumerate(records) if r.value == b"bad"}


def _pipeline(pool: asyncpg.Pool, handler: SetHandler) -> Pipeline:
    return Pipeline(
        service="it",
        consumer="it-sets",
        pool=pool,
        handler=handler,
        retry=RetryPolicy(attempts=2, base_delay_s=0.01, max_delay_s=0.02),
    )


async def test_a_bad_record_in_the_middle_is_set_aside_and_the_rest_of_the_batch_kept(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    url = await migrated_database(endpoints, tmp_path)
    records = _records(unique("s"), [b"v0", b"v1", b"bad", b"v3", b"v4"])
    handler = SetHandler()
    async with pool_for(url) as pool:
        await _pipeline(pool, handler).handle_batch(records)
        states = [r["value"] for r in await state_rows(pool)]
        rows = await outbox_rows(pool)
        statuses = {r["event_id"]: r["status"] for r in await inbox_rows(pool)}
    # The whole batch went to handle_many at once, never one by one.
    assert handler.batches == [[b"v0", b"v1", b"bad", b"v3", b"v4"]]
    assert handler.single == []
    assert sorted(states) == [b"v0", b"v1", b"v3", b"v4"]
    # The emitted rows in record order, then the dead letter, all in the one transaction.
    assert [(r["topic"], r["value"]) for r in rows] == [
        ("it.sets.out", b"v0"),
        ("it.sets.out", b"v1"),
        ("it.sets.out", b"v3"),
        ("it.sets.out", b"v4"),
        ("it.sets.source.dlq", b"bad"),
    ]
    assert statuses[records[2].event_id] == "dead-lettered"
    assert sum(1 for s in statuses.values() if s == "handled") == 4


async def test_a_redelivered_batch_is_all_duplicates_and_a_replay_is_handled_again(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    url = await migrated_database(endpoints, tmp_path)
    records = _records(unique("s"), [b"v0", b"bad", b"v2"])
    handler = SetHandler()
    async with pool_for(url) as pool:
        await _pipeline(pool, handler).handle_batch(records)
        # The whole batch again (a crash before the offsets were committed), with its
        # first record twice: nothing is handled twice.
        await _pipeline(pool, handler).handle_batch([records[0], *records])
        # The operator fixed the cause and replays the dead letter: handled this time.
        fixed = Record(
            topic=records[1].topic,
            partition=0,
            offset=1,
            key=records[1].key,
            value=b"fixed",
            headers=(*records[1].headers, (REPLAY_HEADER, b"operator")),
        )
        await _pipeline(pool, handler).handle_batch([records[0], fixed])
        states = sorted(r["value"] for r in await state_rows(pool))
        statuses = [r["status"] for r in await inbox_rows(pool)]
    assert handler.batches == [[b"v0", b"bad", b"v2"], [b"fixed"]]
    assert states == [b"fixed", b"v0", b"v2"]
    assert statuses == ["handled", "handled", "handled"]
