"""Outcome's use case on its own migrated database, behind the real Pipeline: an
illegal move of the FHIR Task table is refused loudly (the error counter goes up, an
error is logged) and sends nothing: no outbox row, no sequence taken, the case as it
was; the next legal update takes the next sequence."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from prometheus_client import REGISTRY

from contracts.cases import CaseEvent
from contracts.cloudevents import Envelope
from contracts.intake import CaseAccepted, CaseReceived
from contracts.referral import ReviewCompleted
from contracts.scheduling import VisitScheduled
from contracts.topics import CASES, dead_letters, updates
from services.lib.runtime import db
from services.lib.runtime.pipeline import Pipeline, Record, RetryPolicy
from services.outcome.usecases import Outcome
from services.tools.localinfra import Endpoints, ensure_databases
from tests.integration.runtime_helpers import pool_for

pytestmark = pytest.mark.integration

OUTCOME_MIGRATIONS = Path(__file__).parents[2] / "services" / "outcome" / "migrations"
FAST = RetryPolicy(attempts=2, base_delay_s=0.01, max_delay_s=0.02)
HOSPITAL = "police-hospital"
NOW = datetime.now(UTC)


async def _outcome_database(endpoints: Endpoints) -> str:
    name = f"sm_outcome_{uuid.uuid4().hex[:8]}"
    url = (await ensure_databases(endpoints.postgres_url, [name]))[name]
    conn = await asyncpg.connect(url)
    try:
        scopes = [("runtime", db.RUNTIME_MIGRATIONS), ("outcome", OUTCOME_MIGRATIONS)]
        await db.migrate(conn, db.load_migrations(scopes))
    finally:
        await conn.close()
    return url


def _record(event: CaseEvent, producer: str) -> Record:
    envelope = Envelope.new(
        source=f"carelink/{producer}", type=event.ce_type, subject=event.case_id
    )
    return Record(
        topic=CASES,
        partition=0,
        offset=0,
        key=event.case_id.encode(),
        value=event.model_dump_json().encode(),
        headers=tuple(envelope.to_headers()),
    )


def _refusals(from_status: str, to_status: str) -> float:
    value = REGISTRY.get_sample_value(
        "carelink_illegal_status_moves_total",
        {"service": "outcome", "from_status": from_status, "to_status": to_status},
    )
    return value or 0.0


async def _updates(conn: asyncpg.Connection) -> list[dict[str, object]]:
    rows = await conn.fetch(
        "SELECT value FROM outbox WHERE topic = $1 ORDER BY id", updates(HOSPITAL)
    )
    return [json.loads(r["value"]) for r in rows]


async def test_an_illegal_move_is_counted_and_sends_nothing(endpoints: Endpoints) -> None:
    url = await _outcome_database(endpoints)
    case_id = f"case-{uuid.uuid4().hex[:8]}"
    referral_id = f"REF-{case_id}"
    ids = {"case_id": case_id, "hospital_id": HOSPITAL, "referral_id": referral_id}
    received = CaseReceived(
        **ids,
        occurred_at=NOW,
        submitted_at=NOW,
        age_band="75-79",
        district="Songpa-gu",
        dong="Jamsil-dong",
        requested_services=["meal_delivery"],
        admission_date=date(NOW.year, 1, 1),
        expected_discharge_date=NOW.date() + timedelta(days=5),
        priority="routine",
        mobility="assisted",
        registered_disability=False,
        lives_alone=True,
        has_family_caregiver=False,
        uses_public_care=False,
        do_not_contact=False,
    )
    triaged = CaseAccepted(
        **ids,
        occurred_at=NOW,
        person_id="person-1",
        policy_year=NOW.year,
        fee_support="full",
        centre_id="songpa-care-sos",
        district="Songpa-gu",
        priority="routine",
        review_deadline=NOW + timedelta(hours=72),
        expected_discharge_date=NOW.date() + timedelta(days=5),
        requested_services=["meal_delivery"],
    )
    # A visit scheduled before anyone reviewed the referral: in-progress after received.
    too_early = VisitScheduled(
        **ids,
        occurred_at=NOW,
        kind="pre-discharge",
        window_start=NOW,
        window_end=NOW + timedelta(days=2),
    )
    reviewed = ReviewCompleted(**ids, occurred_at=NOW, decision="eligible")

    async with pool_for(url) as pool:
        pipeline = Pipeline(
            service="outcome", consumer="outcome", pool=pool, handler=Outcome().handle, retry=FAST
        )
        await pipeline(_record(received, "intake"))
        await pipeline(_record(triaged, "intake"))
        before = _refusals("received", "in-progress")
        await pipeline(_record(too_early, "scheduling"))
        after = _refusals("received", "in-progress")
        async with pool.acquire() as conn:
            sent = await _updates(conn)
            feed = await conn.fetchrow(
                "SELECT sequence, status FROM referrals WHERE referral_id = $1", referral_id
            )
            case = await conn.fetchrow(
                "SELECT status, business_status FROM cases WHERE case_id = $1", case_id
            )
            inbox = await conn.fetch("SELECT status FROM inbox ORDER BY handled_at")
            dead = await conn.fetchval(
                "SELECT count(*) FROM outbox WHERE topic = $1", dead_letters(CASES)
            )
        await pipeline(_record(reviewed, "referral"))
        async with pool.acquire() as conn:
            sent_later = await _updates(conn)

    assert after == before + 1
    assert [(u["sequence"], u["status"], u["business_status"]) for u in sent] == [
        (1, "received", "received"),
        (2, "received", "triaged"),
    ]
    assert (feed["sequence"], feed["status"]) == (2, "received")
    assert (case["status"], case["business_status"]) == ("received", "triaged")
    # Handled (not retried, not dead-lettered): the refusal is the answer, loudly.
    assert [r["status"] for r in inbox] == ["handled"] * 3
    assert dead == 0
    assert [(u["sequence"], u["status"], u["business_status"]) for u in sent_later[2:]] == [
        (3, "accepted", "reviewed")
    ]


async def test_the_refusal_is_an_error_log_line_without_personal_data(
    endpoints: Endpoints, capsys: pytest.CaptureFixture[str]
) -> None:
    url = await _outcome_database(endpoints)
    case_id = f"case-{uuid.uuid4().hex[:8]}"
    ids = {"case_id": case_id, "hospital_id": HOSPITAL, "referral_id": f"REF-{case_id}"}
    # Nothing was ever said of this case: an acceptance cannot be the first update.
    async with pool_for(url) as pool:
        pipeline = Pipeline(
            service="outcome", consumer="outcome", pool=pool, handler=Outcome().handle, retry=FAST
        )
        before = _refusals("none", "accepted")
        await pipeline(
            _record(ReviewCompleted(**ids, occurred_at=NOW, decision="eligible"), "referral")
        )
        async with pool.acquire() as conn:
            sent = await _updates(conn)
    assert _refusals("none", "accepted") == before + 1
    assert sent == []
    out = capsys.readouterr()
    text = out.out + out.err
    assert "illegal status move refused" in text
    assert case_id in text
