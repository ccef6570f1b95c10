"""Every consumer handles an internal event that carries a field a newer producer added
(issue 8): services are deployed one at a time, so the previous version of a reader
must not dead-letter what the next version of a writer sends.

Each service's own handler (as its app builds it) runs behind the real Pipeline on
its own migrated database; the record has exactly the headers a producer writes.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from pydantic import BaseModel

from contracts.cloudevents import Envelope
from contracts.intake import CaseAccepted, CaseReceived
from contracts.outcome import CaseClosed
from contracts.topics import CASES, dead_letters, updates
from services.intake.usecases import Intake
from services.lib.policy import load_policies, load_registry
from services.lib.runtime import db
from services.lib.runtime.pipeline import Handler, Pipeline, Record, RetryPolicy
from services.lib.tasks import MIGRATIONS as TASKS_MIGRATIONS
from services.outcome.usecases import Outcome
from services.referral.usecases import CaseEvents as ReferralCaseEvents
from services.scheduling.usecases import CaseEvents as SchedulingCaseEvents
from services.tools.localinfra import Endpoints, ensure_databases
from tests.integration.runtime_helpers import pool_for

pytestmark = pytest.mark.integration

SERVICES = Path(__file__).parents[2] / "services"
FAST = RetryPolicy(attempts=2, base_delay_s=0.01, max_delay_s=0.02)
HOSPITAL = "police-hospital"
NOW = datetime.now(UTC)


async def _database(endpoints: Endpoints, service: str, *, with_tasks: bool) -> str:
    name = f"tr_{service}_{uuid.uuid4().hex[:8]}"
    url = (await ensure_databases(endpoints.postgres_url, [name]))[name]
    scopes = [("runtime", db.RUNTIME_MIGRATIONS)]
    if with_tasks:
        scopes.append(("tasks", TASKS_MIGRATIONS))
    scopes.append((service, SERVICES / service / "migrations"))
    conn = await asyncpg.connect(url)
    try:
        await db.migrate(conn, db.load_migrations(scopes))
    finally:
        await conn.close()
    return url


def _with_added_field(event: BaseModel, producer: str) -> Record:
    """The event as a newer `producer` would write it: one field more than this build knows."""
    data: dict[str, Any] = json.loads(event.model_dump_json())
    data["added_in_a_later_version"] = {"optional": True}
    ce_type: str = getattr(event, "ce_type")  # noqa: B009  (a ClassVar of every case event)
    case_id: str = getattr(event, "case_id")  # noqa: B009
    envelope = Envelope.new(source=f"carelink/{producer}", type=ce_type, subject=case_id)
    return Record(
        topic=CASES,
        partition=0,
        offset=0,
        key=case_id.encode(),
        value=json.dumps(data).encode(),
        headers=tuple(envelope.to_headers()),
    )


def _accepted(case_id: str) -> CaseAccepted:
    return CaseAccepted(
        case_id=case_id,
        hospital_id=HOSPITAL,
        referral_id=f"REF-{case_id}",
        occurred_at=NOW,
        person_id=f"person-{case_id}",
        policy_year=NOW.year,
        fee_support="full",
        centre_id="songpa-care-sos",
        district="Songpa-gu",
        priority="routine",
        review_deadline=NOW + timedelta(hours=72),
        expected_discharge_date=NOW.date() + timedelta(days=5),
        requested_services=["meal_delivery"],
    )


async def _handle(url: str, service: str, handler: Handler, record: Record) -> None:
    """Run the record through the Pipeline; it must be handled, not dead-lettered."""
    async with pool_for(url) as pool:
        pipeline = Pipeline(
            service=service, consumer=service, pool=pool, handler=handler, retry=FAST
        )
        await pipeline(record)
        async with pool.acquire() as conn:
            inbox = await conn.fetch("SELECT event_id, status FROM inbox")
            dlq = await conn.fetchval(
                "SELECT count(*) FROM outbox WHERE topic = $1", dead_letters(CASES)
            )
    assert [tuple(r) for r in inbox] == [(record.event_id, "handled")]
    assert dlq == 0


async def test_intake_reads_a_closure_with_an_added_field(endpoints: Endpoints) -> None:
    url = await _database(endpoints, "intake", with_tasks=False)
    case_id = f"case-{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "INSERT INTO cases (case_id, person_id, open) VALUES ($1, 'person-1', true)", case_id
        )
    finally:
        await conn.close()
    closed = CaseClosed(
        case_id=case_id,
        hospital_id=HOSPITAL,
        referral_id="REF-1",
        occurred_at=NOW,
        delivered=[],
        total_krw=0,
        publicly_paid_krw=0,
        self_paid_krw=0,
        annual_cap_krw=1_800_000,
        cap_remaining_krw=1_800_000,
        precautions_acknowledged=True,
    )
    intake = Intake(policies=load_policies(), registry=load_registry())

    await _handle(url, "intake", intake, _with_added_field(closed, "outcome"))

    conn = await asyncpg.connect(url)
    try:
        still_open = await conn.fetchval("SELECT open FROM cases WHERE case_id = $1", case_id)
    finally:
        await conn.close()
    assert still_open is False


async def test_referral_reads_an_acceptance_with_an_added_field(endpoints: Endpoints) -> None:
    url = await _database(endpoints, "referral", with_tasks=True)
    case_id = f"case-{uuid.uuid4().hex[:8]}"

    await _handle(
        url,
        "referral",
        ReferralCaseEvents().handler(),
        _with_added_field(_accepted(case_id), "intake"),
    )

    conn = await asyncpg.connect(url)
    try:
        kinds = await conn.fetch("SELECT kind FROM tasks WHERE case_id = $1", case_id)
    finally:
        await conn.close()
    assert [r["kind"] for r in kinds] == ["review"]


async def test_scheduling_reads_an_acceptance_with_an_added_field(endpoints: Endpoints) -> None:
    url = await _database(endpoints, "scheduling", with_tasks=True)
    case_id = f"case-{uuid.uuid4().hex[:8]}"
    handler = SchedulingCaseEvents(horizon_days=14).handler()

    await _handle(url, "scheduling", handler, _with_added_field(_accepted(case_id), "intake"))

    conn = await asyncpg.connect(url)
    try:
        cases = await conn.fetchval("SELECT count(*) FROM cases WHERE case_id = $1", case_id)
    finally:
        await conn.close()
    assert cases == 1


async def test_outcome_reads_a_receipt_with_an_added_field(endpoints: Endpoints) -> None:
    url = await _database(endpoints, "outcome", with_tasks=False)
    case_id = f"case-{uuid.uuid4().hex[:8]}"
    received = CaseReceived(
        case_id=case_id,
        hospital_id=HOSPITAL,
        referral_id="REF-1",
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

    await _handle(url, "outcome", Outcome().handle, _with_added_field(received, "intake"))

    conn = await asyncpg.connect(url)
    try:
        topics = await conn.fetch("SELECT topic FROM outbox ORDER BY id")
    finally:
        await conn.close()
    # The hospital heard that its referral was received.
    assert [r["topic"] for r in topics] == [updates(HOSPITAL)]
