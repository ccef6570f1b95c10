"""services/lib/hospitalside on a real broker and PostgreSQL: a gateway's hospital events
go out through its outbox on the hospital's referrals topic with the hospital's own
ce_source, survive a frozen broker, and the updates of the served hospitals (only
those) land in `hospital_updates` once per sequence, gaps visible."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import asyncpg
import pytest

from contracts import hospital_v1 as hv1
from contracts import topics
from contracts.cloudevents import Envelope
from services.lib import hospitalside
from services.lib.hospitalside import publishing
from services.lib.hospitalside.timeline import Gap, ordered
from services.lib.hospitalside.updates import (
    UpdatesFollower,
    latest_updates,
    referral_updates,
    unreadable_count,
    updates_topics,
)
from services.lib.runtime import db, kafka
from services.lib.runtime.pipeline import Pipeline, RetryPolicy
from services.tools.localinfra import Endpoints, Infrastructure
from services.tools.simulators.referrals import FakeHospital
from tests.integration.runtime_helpers import (
    kafka_settings,
    new_database,
    outbox_rows,
    pool_for,
    produce,
    read_records,
    running_relay,
    running_subscriber,
    unique,
    wait_until,
)

pytestmark = pytest.mark.integration


def _hospital() -> str:
    return f"hs-{uuid.uuid4().hex[:10]}"


async def _gateway_database(endpoints: Endpoints) -> str:
    url = await new_database(endpoints)
    conn = await asyncpg.connect(url)
    try:
        await db.migrate(
            conn,
            db.load_migrations(
                [("runtime", db.RUNTIME_MIGRATIONS), ("hospitalside", hospitalside.MIGRATIONS)]
            ),
        )
    finally:
        await conn.close()
    return url


async def _hospital_topics(endpoints: Endpoints, *hospital_ids: str) -> None:
    await kafka.ensure_topics(kafka_settings(endpoints), topics.all_topics(hospital_ids))


async def test_events_are_published_on_the_hospitals_topic_with_its_own_source_even_after_a_frozen_broker(
    infrastructure: Infrastructure, endpoints: Endpoints
) -> None:
    if endpoints.kind != "embedded":
        pytest.skip("freezing the broker needs the embedded servers")
    hospital = _hospital()
    await _hospital_topics(endpoints, hospital)
    url = await _gateway_database(endpoints)
    submitted = hv1.ReferralSubmitted.model_validate(FakeHospital(hospital).submission())
    discharged = hv1.PatientDischarged(
        referral_id=submitted.referral_id,
        hospital_id=hospital,
        discharged_at=submitted.submitted_at,
    )
    async with pool_for(url) as pool, running_relay(endpoints, url, poll_interval_s=30) as relay:
        await relay.wait_active()
        infrastructure.freeze_broker()
        try:
            # The gateway's transaction does not need the broker: nothing is lost.
            async with pool.acquire() as conn, conn.transaction():
                first = await publishing.enqueue(conn, hospital, submitted)
            async with pool.acquire() as conn, conn.transaction():
                second = await publishing.enqueue(conn, hospital, discharged)
            await asyncio.sleep(1.0)
            during = await outbox_rows(pool)
        finally:
            infrastructure.thaw_broker()

        async def all_published() -> bool:
            rows = await outbox_rows(pool)
            return len(rows) == 2 and all(r["published_at"] for r in rows)

        await wait_until(all_published, timeout=20, what="both events published")
    assert [r["published_at"] for r in during] == [None, None]
    records = await read_records(
        endpoints, topics.referrals(hospital), 2, partitions=topics.HOSPITAL_PARTITIONS
    )
    assert {r.partition for r in records} == {records[0].partition}  # one key, one partition
    envelopes = [Envelope.from_headers(r.headers) for r in sorted(records, key=lambda r: r.offset)]
    assert [e.id for e in envelopes] == [first.id, second.id]
    assert [e.source for e in envelopes] == [f"hospital/{hospital}"] * 2
    assert [e.type for e in envelopes] == [hv1.SUBMITTED, hv1.DISCHARGED]
    assert all(r.key == submitted.referral_id.encode() for r in records)
    sent = hv1.ReferralSubmitted.model_validate_json(records[0].value)
    assert sent == submitted


def _update(referral_id: str, sequence: int, status: str = "received") -> bytes:
    data = {
        "referral_id": referral_id,
        "case_id": "case-1",
        "sequence": sequence,
        "status": status,
        "business_status": status,
        "occurred_at": "2026-12-02T09:00:00+00:00",
        "details": {"sequence": sequence},
    }
    return json.dumps(data).encode()


def _headers(source: str) -> tuple[tuple[str, bytes], ...]:
    return (
        ("ce_specversion", b"1.0"),
        ("ce_id", uuid.uuid4().hex.encode()),
        ("ce_source", source.encode()),
        ("ce_type", hv1.STATUS_CHANGED.encode()),
        ("ce_time", b"2026-12-02T09:00:00+00:00"),
        ("content-type", b"application/json"),
    )


async def test_updates_of_the_served_hospitals_are_stored_once_per_sequence_with_gaps_visible(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    served, other = _hospital(), _hospital()
    await _hospital_topics(endpoints, served, other)
    url = await _gateway_database(endpoints)
    rid, other_rid = "ref-served", "ref-other"
    key = rid.encode()
    await produce(
        endpoints,
        topics.updates(served),
        [
            (key, _update(rid, 1), _headers("carelink/outcome")),
            (key, _update(rid, 2, "accepted"), _headers("carelink/outcome")),
            (key, _update(rid, 2, "accepted"), _headers("carelink/outcome")),  # a repeat
            (key, b"not json", _headers("carelink/outcome")),
            (key, _update(rid, 4, "in-progress"), _headers("carelink/outcome")),
        ],
        partition=0,
    )
    await produce(
        endpoints,
        topics.updates(other),
        [(other_rid.encode(), _update(other_rid, 1), _headers("carelink/outcome"))],
    )
    async with pool_for(url) as pool:
        pipeline = Pipeline(
            service="it",
            consumer="it-updates",
            pool=pool,
            handler=UpdatesFollower([served]),
            retry=RetryPolicy(2, 0.05, 0.1),
        )
        async with running_subscriber(
            endpoints,
            updates_topics([served]),
            group_id=unique("it-updates"),
            handle=pipeline,
            handle_batch=pipeline.handle_batch,
            batch_size=50,
        ):

            async def stored() -> bool:
                async with pool.acquire() as conn:
                    return (
                        len(await referral_updates(conn, served, rid)) == 3
                        and await unreadable_count(conn) == 1
                    )

            await wait_until(stored, timeout=30, what="served updates stored")
        async with pool.acquire() as conn:
            updates = await referral_updates(conn, served, rid)
            latest = await latest_updates(conn, served, [rid, other_rid])
            others = await conn.fetchval(
                "SELECT count(*) FROM hospital_updates WHERE hospital_id <> $1", served
            )
    assert [u.sequence for u in updates] == [1, 2, 4]
    assert ordered(updates)[2] == Gap(3, 3)
    assert list(latest) == [rid]
    assert latest[rid].status == "in-progress"
    assert others == 0
