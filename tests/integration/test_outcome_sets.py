"""Outcome's set-based path (issue 12) against PostgreSQL: a whole batch of case events,
decided in one transaction over the cases read once, sends exactly what one record at a
time sends (same updates, same sequences, same stored cases and feeds), sets a broken
record aside without losing the rest, and changes nothing when redelivered."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from contracts.cases import CaseEvent
from contracts.cloudevents import Envelope
from contracts.intake import CaseAccepted, CaseLinked, CaseReceived
from contracts.referral import ReviewCompleted
from contracts.scheduling import VisitScheduled
from contracts.topics import CASES, dead_letters
from services.lib.runtime import db
from services.lib.runtime.pipeline import Pipeline, Record, RetryPolicy, Scope
from services.outcome.usecases import Outcome
from services.tools.localinfra import Endpoints, ensure_databases
from tests.integration.runtime_helpers import pool_for

pytestmark = pytest.mark.integration

OUTCOME_MIGRATIONS = Path(__file__).parents[2] / "services" / "outcome" / "migrations"
FAST = RetryPolicy(attempts=2, base_delay_s=0.01, max_delay_s=0.02)
FIRST, SECOND = "police-hospital", "severance"
NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


async def _database(endpoints: Endpoints) -> str:
    name = f"sets_outcome_{uuid.uuid4().hex[:8]}"
    url = (await ensure_databases(endpoints.postgres_url, [name]))[name]
    conn = await asyncpg.connect(url)
    try:
        await db.init_connection(conn)
        scopes = [("runtime", db.RUNTIME_MIGRATIONS), ("outcome", OUTCOME_MIGRATIONS)]
        await db.migrate(conn, db.load_migrations(scopes))
    finally:
        await conn.close()
    return url


def _record(event: CaseEvent, offset: int, value: bytes | None = None) -> Record:
    envelope = Envelope.new(
        source=f"carelink/{event.producer}", type=event.ce_type, subject=event.case_id
    )
    return Record(
        topic=CASES,
        partition=0,
        offset=offset,
        key=event.case_id.encode(),
        value=value if value is not None else event.model_dump_json().encode(),
        headers=tuple(envelope.to_headers()),
    )


def _received(case_id: str, referral_id: str) -> CaseReceived:
    return CaseReceived(
        case_id=case_id,
        hospital_id=FIRST,
        referral_id=referral_id,
        occurred_at=NOW,
        submitted_at=NOW,
        age_band="75-79",
        district="Songpa-gu",
        dong="Jamsil-dong",
        requested_services=["meal_delivery"],
        admission_date=date(2026, 11, 20),
        expected_discharge_date=date(2026, 12, 9),
        priority="routine",
        mobility="assisted",
        registered_disability=False,
        lives_alone=True,
        has_family_caregiver=False,
        uses_public_care=False,
        do_not_contact=False,
    )


def _accepted(case_id: str, referral_id: str) -> CaseAccepted:
    return CaseAccepted(
        case_id=case_id,
        hospital_id=FIRST,
        referral_id=referral_id,
        occurred_at=NOW + timedelta(seconds=1),
        person_id=f"person-{case_id}",
        policy_year=2026,
        fee_support="full",
        centre_id="songpa-care-sos",
        district="Songpa-gu",
        priority="routine",
        review_deadline=NOW + timedelta(hours=72),
        expected_discharge_date=date(2026, 12, 9),
        requested_services=["meal_delivery"],
    )


def _batch() -> list[Record]:
    """Two cases, interleaved: a second hospital's referral joining the first case, a
    review telling both of its referrals, an illegal move on the second case (refused,
    nothing sent) and a broken record between them."""
    a, b = f"case-a-{uuid.uuid4().hex[:6]}", f"case-b-{uuid.uuid4().hex[:6]}"
    events: list[CaseEvent] = [
        _received(a, "REF-A1"),
        _accepted(a, "REF-A1"),
        _received(b, "REF-B1"),
        CaseLinked(case_id=a, hospital_id=SECOND, referral_id="REF-A2", occurred_at=NOW),
        _accepted(b, "REF-B1"),  # its body broken below
        ReviewCompleted(
            case_id=a, hospital_id=FIRST, referral_id="REF-A1", occurred_at=NOW, decision="eligible"
        ),
        VisitScheduled(  # before any review of b: in-progress after accepted is illegal
            case_id=b,
            hospital_id=FIRST,
            referral_id="REF-B1",
            occurred_at=NOW,
            kind="pre-discharge",
            window_start=NOW,
            window_end=NOW + timedelta(days=2),
        ),
        _accepted(b, "REF-B1"),
    ]
    records = [_record(event, i) for i, event in enumerate(events)]
    records[4] = _record(events[4], 4, value=b'{"case_id": "not a whole event"}')
    return records


class Counting(Outcome):
    def __init__(self) -> None:
        super().__init__()
        self.sets: list[int] = []

    async def handle_many(
        self, conn: asyncpg.Connection, records: Any, scope: Scope
    ) -> dict[int, str]:
        self.sets.append(len(records))
        return await super().handle_many(conn, records, scope)


async def _state(pool: asyncpg.Pool) -> dict[str, Any]:
    async with pool.acquire() as conn:
        outbox = await conn.fetch("SELECT topic, key, value FROM outbox ORDER BY id")
        sent = await conn.fetch(
            """SELECT hospital_id, referral_id, sequence, status, business_status
                 FROM updates_sent ORDER BY hospital_id, referral_id, sequence"""
        )
        feeds = await conn.fetch(
            "SELECT hospital_id, referral_id, sequence, status, held_from FROM referrals"
        )
        cases = await conn.fetch("SELECT case_id, status, business_status, path FROM cases")
    cases_by_name = {r["case_id"].split("-")[1]: r for r in cases}
    return {
        "updates": [
            (r["topic"], r["key"], json.loads(r["value"]))
            for r in outbox
            if r["topic"].startswith("hospital.")
        ],
        "dead_letters": [r["value"] for r in outbox if r["topic"] == dead_letters(CASES)],
        "sent": [tuple(r) for r in sent],
        "feeds": sorted(tuple(r) for r in feeds),
        "cases": {
            name: (r["status"], r["business_status"], r["path"])
            for name, r in cases_by_name.items()
        },
    }


def _without_case_ids(state: dict[str, Any]) -> dict[str, Any]:
    """The two runs use their own case ids (one database each); everything else is equal."""
    updates = [(t, k, {**u, "case_id": u["case_id"].split("-")[1]}) for t, k, u in state["updates"]]
    return {
        **state,
        "updates": [(t, None, u) for t, _, u in updates],
        "dead_letters": len(state["dead_letters"]),
    }


async def test_a_batch_sends_what_one_record_at_a_time_sends_and_sets_aside_the_broken_one(
    endpoints: Endpoints,
) -> None:
    batched_url, naive_url = await _database(endpoints), await _database(endpoints)
    records = _batch()
    handler = Counting()
    async with pool_for(batched_url) as pool:
        pipeline = Pipeline(
            service="outcome", consumer="outcome", pool=pool, handler=handler, retry=FAST
        )
        await pipeline.handle_batch(records)
        batched = await _state(pool)
        await pipeline.handle_batch(records)  # redelivered: a crash before the offsets
        redelivered = await _state(pool)
    async with pool_for(naive_url) as pool:
        one_by_one = Pipeline(
            service="outcome", consumer="outcome", pool=pool, handler=Outcome(), retry=FAST
        )
        for record in _batch():
            await one_by_one(record)
        naive = await _state(pool)

    assert handler.sets == [len(records)]  # one set, the broken record inside it
    assert batched["dead_letters"] == [records[4].value]
    assert redelivered == batched
    assert _without_case_ids(batched) == _without_case_ids(naive)
    # What the hospitals hear: the first case's two referrals each their own sequence,
    # nothing for the refused move.
    told = [
        (t, u["referral_id"], u["sequence"], u["status"], u["business_status"])
        for t, _, u in batched["updates"]
    ]
    first, second = f"hospital.{FIRST}.updates", f"hospital.{SECOND}.updates"
    assert told == [
        (first, "REF-A1", 1, "received", "received"),
        (first, "REF-A1", 2, "received", "triaged"),
        (first, "REF-B1", 1, "received", "received"),
        (second, "REF-A2", 1, "received", "received"),
        (second, "REF-A2", 2, "received", "triaged"),
        (first, "REF-A1", 3, "accepted", "reviewed"),
        (second, "REF-A2", 3, "accepted", "reviewed"),
        (first, "REF-B1", 2, "received", "triaged"),
    ]
    # Each update kept for the case page, as it went out.
    assert sorted(batched["sent"]) == sorted(
        (t.split(".")[1], u["referral_id"], u["sequence"], u["status"], u["business_status"])
        for t, _, u in batched["updates"]
    )
