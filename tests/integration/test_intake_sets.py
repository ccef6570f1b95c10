"""Intake's set-based submission path (issue 12) against PostgreSQL: a whole batch in
one transaction decides exactly what one record at a time decides (same events in the
same order, same referrals), a record that names no referral is set aside without
losing the rest, and a redelivered batch changes nothing."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from contracts import hospital_v1 as hv1
from contracts.topics import CASES
from services.intake import domain
from services.intake.submissions import BatchedIntake
from services.intake.usecases import Intake
from services.lib.policy import load_policies, load_registry
from services.lib.runtime import db
from services.lib.runtime.outbox import decode_headers
from services.lib.runtime.pipeline import Pipeline, Record, RetryPolicy, Scope
from services.tools.localinfra import Endpoints, ensure_databases
from services.tools.simulators.referrals import FakeHospital, HospitalRecord
from tests.integration.runtime_helpers import pool_for

pytestmark = pytest.mark.integration

INTAKE_MIGRATIONS = Path(__file__).parents[2] / "services" / "intake" / "migrations"
POLICIES, REGISTRY = load_policies(), load_registry()
FAST = RetryPolicy(attempts=2, base_delay_s=0.01, max_delay_s=0.02)


async def _database(endpoints: Endpoints) -> str:
    name = f"sets_intake_{uuid.uuid4().hex[:8]}"
    url = (await ensure_databases(endpoints.postgres_url, [name]))[name]
    conn = await asyncpg.connect(url)
    try:
        await db.init_connection(conn)
        await db.migrate(
            conn,
            db.load_migrations([("runtime", db.RUNTIME_MIGRATIONS), ("intake", INTAKE_MIGRATIONS)]),
        )
    finally:
        await conn.close()
    return url


def _as_record(hospital_record: HospitalRecord, offset: int) -> Record:
    return Record(
        topic=hospital_record.topic,
        partition=0,
        offset=offset,
        key=hospital_record.key,
        value=hospital_record.value,
        headers=tuple(hospital_record.headers),
    )


def _batch() -> list[Record]:
    """Every kind of submission, a broken record and a follow-up, in one batch."""
    hospital = FakeHospital(sorted(REGISTRY.hospital_ids)[0], seed=12)
    a = hospital.submission(referral_id="ref-a")
    b = hospital.submission(referral_id="ref-b")
    same_person_as_a = hospital.submission(referral_id="ref-c", patient=a["patient"])
    other_content_under_a = hospital.submission(referral_id="ref-a")
    no_consent = hospital.submission(referral_id="ref-d", consent=False)
    records = [
        hospital.submitted(a),
        hospital.submitted(b),
        hospital.record(hv1.SUBMITTED, b, key=""),  # names no referral
        hospital.submitted(same_person_as_a),  # joins a's case, decided after it
        hospital.submitted(a),  # identical re-send: the status again
        hospital.discharged("ref-b"),  # a follow-up, after its submission
        hospital.submitted(other_content_under_a),  # refused, the referral goes on
        hospital.submitted(no_consent),  # rejected, nothing kept
    ]
    return [_as_record(r, i) for i, r in enumerate(records)]


class Counting(BatchedIntake):
    def __init__(self) -> None:
        super().__init__(policies=POLICIES, registry=REGISTRY)
        self.sets: list[int] = []

    async def handle_many(
        self, conn: asyncpg.Connection, records: Any, scope: Scope
    ) -> dict[int, str]:
        self.sets.append(len(records))
        return await super().handle_many(conn, records, scope)


async def _state(pool: asyncpg.Pool) -> dict[str, Any]:
    async with pool.acquire() as conn:
        outbox = await conn.fetch("SELECT topic, value, headers FROM outbox ORDER BY id")
        referrals = await conn.fetch(
            "SELECT referral_id, case_id, outcome, submission IS NOT NULL AS kept FROM referrals"
        )
        cases = await conn.fetch("SELECT case_id, person_id, open, created_at FROM cases")
    events = [
        (dict(decode_headers(r["headers"]))["ce_type"].decode(), json.loads(r["value"]))
        for r in outbox
        if r["topic"] == CASES
    ]
    return {
        "events": [(ce_type, data.get("referral_id")) for ce_type, data in events],
        "case_of": {r["referral_id"]: r["case_id"] for r in referrals},
        "referrals": {r["referral_id"]: (r["outcome"], r["kept"]) for r in referrals},
        "dead_letters": [r["value"] for r in outbox if r["topic"].endswith(".dlq")],
        "cases": {r["case_id"]: (r["person_id"], r["open"]) for r in cases},
        "transaction_starts": {r["created_at"] for r in cases},
        "outbox_rows": len(outbox),
    }


async def test_a_batch_decides_what_one_record_at_a_time_decides_and_sets_aside_the_broken_one(
    endpoints: Endpoints,
) -> None:
    records = _batch()
    batched_url, naive_url = await _database(endpoints), await _database(endpoints)
    handler = Counting()
    async with pool_for(batched_url) as pool:
        await Pipeline(
            service="intake", consumer="intake", pool=pool, handler=handler, retry=FAST
        ).handle_batch(records)
        batched = await _state(pool)
        # The whole batch delivered again (a crash before the offsets were committed).
        await Pipeline(
            service="intake", consumer="intake", pool=pool, handler=handler, retry=FAST
        ).handle_batch(records)
        redelivered = await _state(pool)
    async with pool_for(naive_url) as pool:
        one_by_one = Pipeline(
            service="intake",
            consumer="intake",
            pool=pool,
            handler=Intake(policies=POLICIES, registry=REGISTRY),
            retry=FAST,
        )
        for record in records:
            await one_by_one(record)
        naive = await _state(pool)

    # Handled as one set (the broken record set aside inside it), in one transaction.
    assert handler.sets == [len(records)]
    assert len(batched["transaction_starts"]) == 1
    for state in (batched, naive):
        assert state["referrals"] == {
            "ref-a": ("accepted", True),
            "ref-b": ("accepted", True),
            "ref-c": ("linked", True),
            "ref-d": ("rejected:missing-consent", False),
        }
        assert state["case_of"]["ref-c"] == state["case_of"]["ref-a"]
        assert state["dead_letters"] == [records[2].value]
        a_case = state["cases"][state["case_of"]["ref-a"]]
        assert a_case[0] is not None  # a person
        assert a_case[1] is True  # open
        assert state["cases"][state["case_of"]["ref-d"]] == (None, False)
    assert batched["events"] == naive["events"]
    assert [t for t, _ in batched["events"]] == [
        "carelink.case.received.v1",
        "carelink.case.accepted.v1",
        "carelink.case.received.v1",
        "carelink.case.accepted.v1",
        "carelink.case.linked.v1",
        "carelink.case.status-requested.v1",
        "carelink.case.discharged.v1",
        "carelink.case.submission-refused.v1",
        "carelink.case.rejected.v1",
    ]
    assert redelivered == batched


def test_the_batch_covers_every_kind_of_record() -> None:
    """The batch above must hold what it says (a guard against the simulator changing)."""
    readings = [
        domain.read_hospital_record(
            r.topic,
            r.key_text,
            r.headers,
            r.value,
            policies=POLICIES,
            registry=REGISTRY,
            now=datetime.now(UTC),
        )
        for r in _batch()
    ]
    kinds = [type(r).__name__ for r in readings]
    assert kinds == [
        "Submitted",
        "Submitted",
        "Unaddressed",
        "Submitted",
        "Submitted",
        "FollowUp",
        "Submitted",
        "Submitted",
    ]
