"""An event is identified by (ce_source, ce_id), as CloudEvents defines it (issue 8).

Two hospitals may well send the same ce_id: neither event may be dropped as the
other's duplicate, while a redelivery of either still is one. The inbox rows
written before the key included the source survive the migration and still
recognise their redeliveries.
"""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from services.lib.runtime import db
from services.lib.runtime.pipeline import Pipeline, Record, RetryPolicy
from services.tools.localinfra import Endpoints
from tests.integration.runtime_helpers import (
    migrated_database,
    new_database,
    new_topic,
    pool_for,
    produce,
    running_subscriber,
    unique,
    wait_until,
)

pytestmark = pytest.mark.integration

FAST = RetryPolicy(attempts=2, base_delay_s=0.01, max_delay_s=0.02)


def _headers(ce_id: str, source: str) -> tuple[tuple[str, bytes], ...]:
    return (
        ("ce_specversion", b"1.0"),
        ("ce_id", ce_id.encode()),
        ("ce_source", source.encode()),
        ("ce_type", b"it.test.v1"),
    )


def _record(ce_id: str, source: str, *, offset: int) -> Record:
    return Record(
        topic="it.identity.source",
        partition=0,
        offset=offset,
        key=b"referral-1",
        value=b"{}",
        headers=_headers(ce_id, source),
    )


class _Handled:
    """A handler that remembers which (ce_source, ce_id) it was called for."""

    def __init__(self) -> None:
        self.calls: list[tuple[str | None, str | None]] = []

    async def __call__(self, conn: asyncpg.Connection, record: Record) -> None:
        self.calls.append((record.header("ce_source"), record.header("ce_id")))


def _pipeline(pool: asyncpg.Pool, handler: _Handled) -> Pipeline:
    return Pipeline(service="it", consumer="intake", pool=pool, handler=handler, retry=FAST)


async def test_the_same_ce_id_from_two_sources_is_two_events(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    url = await migrated_database(endpoints, tmp_path)
    ce_id = unique("evt")
    handled = _Handled()
    from_a = _record(ce_id, "hospital-a/emr", offset=0)
    from_b = _record(ce_id, "hospital-b/emr", offset=1)
    async with pool_for(url) as pool:
        pipeline = _pipeline(pool, handled)
        await pipeline(from_a)
        await pipeline(from_b)
        # Redeliveries of each (same record again) are still duplicates.
        await pipeline(from_a)
        await pipeline(from_b)
    assert handled.calls == [("hospital-a/emr", ce_id), ("hospital-b/emr", ce_id)]


async def test_the_same_ce_id_from_two_sources_in_one_batch_is_two_events(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    url = await migrated_database(endpoints, tmp_path)
    ce_id = unique("evt")
    handled = _Handled()
    records = [
        _record(ce_id, "hospital-a/emr", offset=0),
        _record(ce_id, "hospital-b/emr", offset=1),
        _record(ce_id, "hospital-a/emr", offset=2),  # hospital A sent its event twice
    ]
    async with pool_for(url) as pool:
        await _pipeline(pool, handled).handle_batch(records)
    assert handled.calls == [("hospital-a/emr", ce_id), ("hospital-b/emr", ce_id)]


async def test_the_same_ce_id_from_two_sources_through_the_real_broker(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    url = await migrated_database(endpoints, tmp_path)
    topic = await new_topic(endpoints)
    group = unique("it-group")
    ce_id = unique("evt")
    handled = _Handled()
    await produce(
        endpoints,
        topic,
        [
            (b"referral-1", b"{}", _headers(ce_id, "hospital-a/emr")),
            (b"referral-1", b"{}", _headers(ce_id, "hospital-b/emr")),
            (b"referral-1", b"{}", _headers(ce_id, "hospital-a/emr")),  # A's repeat
            (b"referral-2", b"{}", _headers(unique("evt"), "hospital-a/emr")),  # a marker
        ],
    )
    async with pool_for(url) as pool:
        pipeline = _pipeline(pool, handled)
        async with running_subscriber(endpoints, [topic], group_id=group, handle=pipeline):

            async def marker_seen() -> bool:
                return len(handled.calls) >= 3

            await wait_until(marker_seen, timeout=30, what="three events handled")
    assert handled.calls[:2] == [("hospital-a/emr", ce_id), ("hospital-b/emr", ce_id)]
    assert len(handled.calls) == 3  # A's repeat was a duplicate


async def test_inbox_rows_written_before_the_source_was_kept_survive_and_still_dedupe(
    endpoints: Endpoints,
) -> None:
    url = await new_database(endpoints)
    migrations = db.load_migrations([("runtime", db.RUNTIME_MIGRATIONS)])
    before = [m for m in migrations if m.version < "runtime:0003"]  # the schema until now
    handled_id, dead_id = unique("old"), unique("dead")
    conn = await asyncpg.connect(url)
    try:
        await db.migrate(conn, before)
        await conn.execute(
            "INSERT INTO inbox (consumer, event_id, status) VALUES"
            " ('intake', $1, 'handled'), ('intake', $2, 'dead-lettered')",
            handled_id,
            dead_id,
        )
        applied = await db.migrate(conn, migrations)
        rows = await conn.fetch(
            "SELECT consumer, source, event_id, status FROM inbox ORDER BY status"
        )
        key = await conn.fetchval(
            """SELECT array_agg(a.attname ORDER BY k.ord)
               FROM pg_index i
               CROSS JOIN unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
               WHERE i.indrelid = 'inbox'::regclass AND i.indisprimary"""
        )
    finally:
        await conn.close()
    assert applied  # the new migration ran on a database that had the old ones
    assert [tuple(r) for r in rows] == [
        ("intake", "", dead_id, "dead-lettered"),
        ("intake", "", handled_id, "handled"),
    ]
    assert key == ["consumer", "source", "event_id"]

    handled = _Handled()
    async with pool_for(url) as pool:
        pipeline = _pipeline(pool, handled)
        # Handled before the upgrade: its redelivery is still a duplicate.
        await pipeline(_record(handled_id, "hospital-a/emr", offset=0))
        # Dead-lettered before the upgrade: a redelivery stays a duplicate ...
        await pipeline(_record(dead_id, "hospital-a/emr", offset=1))
        assert handled.calls == []
        # ... and an operator's replay is handled, once.
        replay = Record(
            topic="it.identity.source",
            partition=0,
            offset=2,
            key=b"referral-1",
            value=b"{}",
            headers=(*_headers(dead_id, "hospital-a/emr"), ("carelink_replay", b"1")),
        )
        await pipeline(replay)
        await pipeline(replay)
    assert handled.calls == [("hospital-a/emr", dead_id)]
