"""Regression (issue 8): coordinators' actions and case-event consumers take their row
locks in one order, the case first, then its tasks, so running them together on the
same case never deadlocks (PostgreSQL would abort one side with DeadlockDetectedError).

Before the fix a coordinator action locked its task (the conditional UPDATE) and then
the case, while a consumer locked the case and then the case's tasks. Each round here
starts both at once on a fresh case, against the real PostgreSQL; a round may end
with a TaskError (the consumer closed the task first), never with a deadlock.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from contracts.cases import CaseEvent
from contracts.cloudevents import Envelope
from contracts.hospital_v1 import CancelReason, ServiceCode
from contracts.intake import CaseAccepted, CaseCancelled, DischargeDateChanged
from contracts.referral import ReviewCompleted
from contracts.scheduling import VisitDone
from contracts.topics import CASES
from services.lib.policy import load_policies, load_providers, load_registry, seoul_date
from services.lib.runtime import db
from services.lib.runtime.pipeline import Handler, Record
from services.lib.tasks import MIGRATIONS as TASKS_MIGRATIONS
from services.lib.tasks import operations as tasks
from services.referral import usecases as referral
from services.scheduling import usecases as scheduling
from services.tools.localinfra import Endpoints, ensure_databases

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SERVICES = Path(__file__).parents[2] / "services"
ROUNDS = 50
REGISTRY = load_registry()
PROVIDERS = load_providers(REGISTRY)
ACTOR = "coord-a"
HOSPITAL = "severance"


async def _pool(endpoints: Endpoints, service: str) -> asyncpg.Pool:
    name = f"lo_{service}_{uuid.uuid4().hex[:8]}"
    url = (await ensure_databases(endpoints.postgres_url, [name]))[name]
    conn = await asyncpg.connect(url)
    try:
        await db.init_connection(conn)
        await db.migrate(
            conn,
            db.load_migrations(
                [
                    ("runtime", db.RUNTIME_MIGRATIONS),
                    ("tasks", TASKS_MIGRATIONS),
                    (service, SERVICES / service / "migrations"),
                ]
            ),
        )
    finally:
        await conn.close()
    # Both sides of a round hold a connection at once; warm ones start together.
    return await db.create_pool(url, min_size=4, max_size=4)


@pytest.fixture
async def scheduling_pool(endpoints: Endpoints) -> AsyncIterator[asyncpg.Pool]:
    pool = await _pool(endpoints, "scheduling")
    try:
        yield pool
    finally:
        await asyncio.wait_for(pool.close(), 10)


@pytest.fixture
async def referral_pool(endpoints: Endpoints) -> AsyncIterator[asyncpg.Pool]:
    pool = await _pool(endpoints, "referral")
    try:
        yield pool
    finally:
        await asyncio.wait_for(pool.close(), 10)


def _record(event: CaseEvent) -> Record:
    envelope = Envelope.new(source="test", type=event.ce_type, subject=event.case_id)
    return Record(
        topic=CASES,
        partition=0,
        offset=0,
        key=event.case_id.encode(),
        value=event.model_dump_json().encode(),
        headers=tuple(envelope.to_headers()),
    )


async def _consume(pool: asyncpg.Pool, handler: Handler, event: CaseEvent) -> None:
    """What the pipeline does with one record: the use case in one transaction."""
    async with pool.acquire() as conn, conn.transaction():
        await handler(conn, _record(event))


def _ids(case_id: str) -> dict[str, Any]:
    return {
        "case_id": case_id,
        "hospital_id": HOSPITAL,
        "referral_id": f"ref-{case_id}",
        "occurred_at": datetime.now(UTC),
    }


def _accepted(case_id: str) -> CaseAccepted:
    return CaseAccepted(
        **_ids(case_id),
        person_id=f"person-{case_id}",
        policy_year=2025,
        fee_support="full",
        centre_id="centre-songpa",
        district="Songpa-gu",
        priority="routine",
        review_deadline=datetime.now(UTC) + timedelta(hours=72),
        expected_discharge_date=date.today() + timedelta(days=3),
        requested_services=[ServiceCode("meal_delivery")],
    )


async def _claimed(pool: asyncpg.Pool, case_id: str, kind: str) -> tasks.Task:
    async with pool.acquire() as conn:
        live = [t for t in await tasks.for_case(conn, case_id) if t.kind == kind]
        assert len(live) == 1, live
        return await tasks.claim(conn, live[0].id, ACTOR, now=datetime.now(UTC))


async def _race(coordinator_action: Awaitable[object], consumer: Awaitable[None]) -> None:
    """Both at once; a TaskError is a fair loss of the race, a deadlock is the bug."""
    results = await asyncio.gather(coordinator_action, consumer, return_exceptions=True)
    for result in results:
        if isinstance(result, asyncpg.exceptions.DeadlockDetectedError):
            pytest.fail(f"deadlock between a coordinator action and a consumer: {result}")
        if isinstance(result, BaseException) and not isinstance(result, tasks.TaskError):
            raise result


async def test_a_visit_completed_while_the_discharge_date_moves_never_deadlocks(
    scheduling_pool: asyncpg.Pool,
) -> None:
    events = scheduling.CaseEvents(horizon_days=7).handler()
    desk = scheduling.Coordinator(scheduling_pool)
    for _ in range(ROUNDS):
        case_id = f"case-{uuid.uuid4().hex[:12]}"
        await _consume(scheduling_pool, events, _accepted(case_id))
        await _consume(
            scheduling_pool, events, ReviewCompleted(**_ids(case_id), decision="eligible")
        )
        visit = await _claimed(scheduling_pool, case_id, "pre-discharge-visit")
        moved = DischargeDateChanged(
            **_ids(case_id),
            expected_discharge_date=date.today() + timedelta(days=5),
        )
        await _race(
            desk.complete_visit(visit.id, ACTOR, precautions_acknowledged=True),
            _consume(scheduling_pool, events, moved),
        )


async def test_a_failed_contact_while_the_hospital_cancels_never_deadlocks(
    scheduling_pool: asyncpg.Pool,
) -> None:
    events = scheduling.CaseEvents(horizon_days=7).handler()
    # One failed attempt makes the person unreachable: the action also suspends the task.
    desk = scheduling.Coordinator(scheduling_pool, max_contact_attempts=1)
    for _ in range(ROUNDS):
        case_id = f"case-{uuid.uuid4().hex[:12]}"
        await _consume(scheduling_pool, events, _accepted(case_id))
        await _consume(
            scheduling_pool, events, ReviewCompleted(**_ids(case_id), decision="eligible")
        )
        visit = await _claimed(scheduling_pool, case_id, "pre-discharge-visit")
        cancelled = CaseCancelled(
            **_ids(case_id),
            reason_code=CancelReason.CANCELLED_BY_HOSPITAL,
        )
        await _race(
            desk.contact_failed(visit.id, ACTOR),
            _consume(scheduling_pool, events, cancelled),
        )


async def test_a_review_completed_while_the_hospital_cancels_never_deadlocks(
    referral_pool: asyncpg.Pool,
) -> None:
    events = referral.CaseEvents().handler()
    desk = referral.Coordinator(referral_pool, load_policies(), PROVIDERS, REGISTRY)
    for _ in range(ROUNDS):
        case_id = f"case-{uuid.uuid4().hex[:12]}"
        await _consume(referral_pool, events, _accepted(case_id))
        review = await _claimed(referral_pool, case_id, referral.REVIEW)
        cancelled = CaseCancelled(
            **_ids(case_id),
            reason_code=CancelReason.CANCELLED_BY_HOSPITAL,
        )
        await _race(
            desk.complete_review(review.id, ACTOR, decision="eligible"),
            _consume(referral_pool, events, cancelled),
        )


async def test_a_provider_report_while_the_hospital_cancels_never_deadlocks(
    referral_pool: asyncpg.Pool,
) -> None:
    """A provider's report locks the case, its lines, then the delivery task; the consumer
    of a cancellation the case, its tasks, then its lines: the case comes first in both."""
    events = referral.CaseEvents().handler()
    desk = referral.Coordinator(referral_pool, load_policies(), PROVIDERS, REGISTRY)
    providers = referral.ProviderDesk(referral_pool, load_policies(), PROVIDERS)
    today = seoul_date(datetime.now(UTC))
    for _ in range(ROUNDS // 5):
        case_id = f"case-{uuid.uuid4().hex[:12]}"
        await _consume(referral_pool, events, _accepted(case_id))
        review = await _claimed(referral_pool, case_id, referral.REVIEW)
        await desk.complete_review(review.id, ACTOR, decision="eligible")
        visit = VisitDone(**_ids(case_id), kind="pre-discharge", precautions_acknowledged=True)
        await _consume(referral_pool, events, visit)
        plan = await _claimed(referral_pool, case_id, referral.CARE_PLAN)
        await desk.set_care_plan(plan.id, ACTOR, lines=[("meal_delivery", 10)])
        async with referral_pool.acquire() as conn:
            (line,) = await conn.fetch(
                "SELECT id, provider_id FROM plan_lines WHERE case_id = $1", case_id
            )
        cancelled = CaseCancelled(**_ids(case_id), reason_code=CancelReason.DECEASED)
        await _race(
            providers.report(
                line["provider_id"],
                line["id"],
                referral.LineReport(
                    started_on=None,
                    ended_on=today,
                    delivered_units=0,
                    end_reason="deceased",
                ),
            ),
            _consume(referral_pool, events, cancelled),
        )
