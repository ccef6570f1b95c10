"""Referral's and scheduling's case events as sets (issue 12), through the real Pipeline
on each service's own migrated database: a batch mixing acceptances (one repeated, one
of a case the service already has) with a visit, a review, a date change and a closure
of the same case ends in exactly the state the same records give one at a time, and
the acceptances really went to the set handler in runs."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from pydantic import BaseModel

from contracts.cloudevents import Envelope
from contracts.intake import CaseAccepted, DischargeDateChanged
from contracts.outcome import CaseClosed
from contracts.referral import ReviewCompleted
from contracts.scheduling import VisitDone
from contracts.topics import CASES, dead_letters
from services.lib.runtime import db
from services.lib.runtime.outbox import decode_headers
from services.lib.runtime.pipeline import Handler, Pipeline, Record, RetryPolicy, Scope
from services.lib.tasks import MIGRATIONS as TASKS_MIGRATIONS
from services.referral.usecases import CaseEvents as ReferralCaseEvents
from services.scheduling.usecases import CaseEvents as SchedulingCaseEvents
from services.tools.localinfra import Endpoints, ensure_databases
from tests.integration.runtime_helpers import pool_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SERVICES = Path(__file__).parents[2] / "services"
FAST = RetryPolicy(attempts=2, base_delay_s=0.01, max_delay_s=0.02)
NOW = datetime.now(UTC).replace(microsecond=0)
BASE = {"hospital_id": "seoul-general", "occurred_at": NOW}


async def _pool(endpoints: Endpoints, service: str) -> AsyncIterator[asyncpg.Pool]:
    name = f"ces_{service}_{uuid.uuid4().hex[:8]}"
    url = (await ensure_databases(endpoints.postgres_url, [name]))[name]
    conn = await asyncpg.connect(url)
    try:
        scopes = [("runtime", db.RUNTIME_MIGRATIONS), ("tasks", TASKS_MIGRATIONS)]
        scopes.append((service, SERVICES / service / "migrations"))
        await db.migrate(conn, db.load_migrations(scopes))
    finally:
        await conn.close()
    async with pool_for(url) as pool:
        yield pool


@pytest.fixture(scope="module")
async def referral_pool(endpoints: Endpoints) -> AsyncIterator[asyncpg.Pool]:
    async for pool in _pool(endpoints, "referral"):
        yield pool


@pytest.fixture(scope="module")
async def scheduling_pool(endpoints: Endpoints) -> AsyncIterator[asyncpg.Pool]:
    async for pool in _pool(endpoints, "scheduling"):
        yield pool


def _accepted(case_id: str, *, review_hours: int = 72, priority: str = "routine") -> CaseAccepted:
    return CaseAccepted(
        **BASE,
        case_id=case_id,
        referral_id=f"REF-{case_id.rsplit('-', 1)[-1]}",
        person_id=f"person-{case_id.rsplit('-', 1)[-1]}",
        policy_year=NOW.year,
        fee_support="full",
        centre_id="songpa-care-sos",
        district="Songpa-gu",
        priority=priority,
        review_deadline=NOW + timedelta(hours=review_hours),
        expected_discharge_date=NOW.date() + timedelta(days=5),
        requested_services=["meal_delivery"],
    )


def _record(offset: int, event: BaseModel) -> Record:
    ce_type: str = getattr(event, "ce_type")  # noqa: B009  (a ClassVar of every case event)
    case_id: str = getattr(event, "case_id")  # noqa: B009
    envelope = Envelope.new(source="carelink/test", type=ce_type, subject=case_id, time=NOW)
    return Record(
        topic=CASES,
        partition=0,
        offset=offset,
        key=case_id.encode(),
        value=event.model_dump_json().encode(),
        headers=tuple(envelope.to_headers()),
    )


def _closed(case_id: str) -> CaseClosed:
    return CaseClosed(
        **BASE,
        case_id=case_id,
        referral_id="REF-x",
        delivered=[],
        total_krw=0,
        publicly_paid_krw=0,
        self_paid_krw=0,
        annual_cap_krw=1_800_000,
        cap_remaining_krw=1_800_000,
        precautions_acknowledged=True,
    )


SetHandler = Callable[[asyncpg.Connection, list[tuple[Record, Any]], Scope], Awaitable[None]]


def _spy(runs: list[int], handler: SetHandler) -> SetHandler:
    """The service's own set handler, noting the length of every run it is given."""

    async def spy(conn: asyncpg.Connection, items: list[tuple[Record, Any]], scope: Scope) -> None:
        runs.append(len(items))
        await handler(conn, items, scope)

    return spy


async def _run(pool: asyncpg.Pool, handler: Handler, records: list[Record], *, batch: bool) -> None:
    pipeline = Pipeline(service="it", consumer="it-sets", pool=pool, handler=handler, retry=FAST)
    if batch:
        await pipeline.handle_batch(records)
    else:
        for record in records:
            await pipeline(record)


async def _state(pool: asyncpg.Pool, prefix: str, *, times: bool) -> dict[str, list[Any]]:
    """The prefix's cases, tasks, task audit and outbox rows, ids made comparable
    (the prefix stripped, generated ids and event ids left out). `times`: whether the
    tasks' windows can be compared (scheduling's depend on the clock)."""
    window = "due_at, window_start," if times else ""
    async with pool.acquire() as conn:
        cases = await conn.fetch(
            "SELECT * FROM cases WHERE case_id LIKE $1 || '-%' ORDER BY case_id", prefix
        )
        tasks = await conn.fetch(
            f"""SELECT case_id, kind, centre_id, priority, {window} status, generation,
                       hospital_id, expected_discharge_date
                FROM tasks WHERE case_id LIKE $1 || '-%' ORDER BY id""",
            prefix,
        )
        audit = await conn.fetch(
            """SELECT t.case_id, t.kind, a.actor, a.action FROM task_audit a
               JOIN tasks t ON t.id = a.task_id WHERE t.case_id LIKE $1 || '-%' ORDER BY a.id""",
            prefix,
        )
        outbox = await conn.fetch(
            """SELECT topic, convert_from(key, 'UTF8') AS key, headers FROM outbox
               WHERE convert_from(key, 'UTF8') LIKE $1 || '-%' ORDER BY id""",
            prefix,
        )
        dead = await conn.fetchval(
            "SELECT count(*) FROM outbox WHERE topic = $1", dead_letters(CASES)
        )

    def strip(row: asyncpg.Record) -> tuple[Any, ...]:
        return tuple(v.removeprefix(prefix) if isinstance(v, str) else v for v in row.values())

    def ce_type(row: asyncpg.Record) -> str:
        return next(v.decode() for k, v in decode_headers(row["headers"]) if k == "ce_type")

    return {
        "cases": [strip(r) for r in cases],
        "tasks": [strip(r) for r in tasks],
        "audit": [strip(r) for r in audit],
        "outbox": [(r["topic"], r["key"].removeprefix(prefix), ce_type(r)) for r in outbox],
        "dead": [dead],
    }


def _referral_mix(p: str) -> list[Record]:
    events: list[BaseModel] = [
        _accepted(f"{p}-x"),
        _accepted(f"{p}-y"),
        # Accepted again, differently: the first acceptance counts.
        _accepted(f"{p}-y", review_hours=24, priority="urgent"),
        VisitDone(
            **BASE,
            case_id=f"{p}-x",
            referral_id="REF-x",
            kind="pre-discharge",
            precautions_acknowledged=True,
        ),
        _accepted(f"{p}-z"),
        _accepted(f"{p}-w"),  # referral has it already (below): no second review
        _closed(f"{p}-x"),
        _accepted(f"{p}-v"),
    ]
    return [_record(i, event) for i, event in enumerate(events)]


async def test_referral_batch_ends_as_one_at_a_time(referral_pool: asyncpg.Pool) -> None:
    states = {}
    for batch in (False, True):
        prefix = f"{'many' if batch else 'one'}-{uuid.uuid4().hex[:6]}"
        runs: list[int] = []
        events = ReferralCaseEvents()
        events._accepted = _spy(runs, events._accepted)  # type: ignore[method-assign,assignment]
        handler = events.handler()
        await _run(referral_pool, handler, [_record(0, _accepted(f"{prefix}-w"))], batch=False)
        await _run(referral_pool, handler, _referral_mix(prefix), batch=batch)
        states[batch] = await _state(referral_pool, prefix, times=True)
        # One at a time every acceptance is a run of one; in the batch, the runs between
        # the other events.
        assert runs == ([1] + ([3, 2, 1] if batch else [1] * 6))

    assert states[True] == states[False]
    state = states[True]
    assert state["dead"] == [0]
    tasks = [(t[0], t[1], t[6]) for t in state["tasks"]]
    assert tasks == [
        ("-w", "review", "open"),
        ("-x", "review", "cancelled"),
        ("-y", "review", "open"),
        ("-x", "care-plan", "cancelled"),
        ("-z", "review", "open"),
        ("-v", "review", "open"),
    ]
    # Y's case and review are its first acceptance's.
    [y_review] = [t for t in state["tasks"] if t[0] == "-y"]
    assert (y_review[3], y_review[4]) == ("routine", NOW + timedelta(hours=72))
    assert [c[7] for c in state["cases"] if c[0] == "-y"] == ["routine"]
    assert [c[0] for c in state["cases"] if c[-3]] == ["-x"]  # closed


def _scheduling_mix(p: str) -> list[Record]:
    events: list[BaseModel] = [
        _accepted(f"{p}-x"),
        _accepted(f"{p}-y"),
        _accepted(f"{p}-y", review_hours=24, priority="urgent"),
        ReviewCompleted(**BASE, case_id=f"{p}-x", referral_id="REF-x", decision="eligible"),
        DischargeDateChanged(
            **BASE,
            case_id=f"{p}-x",
            referral_id="REF-x",
            expected_discharge_date=NOW.date() + timedelta(days=8),
        ),
        _accepted(f"{p}-z"),
        _closed(f"{p}-x"),
    ]
    return [_record(i, event) for i, event in enumerate(events)]


async def test_scheduling_batch_ends_as_one_at_a_time(scheduling_pool: asyncpg.Pool) -> None:
    states = {}
    for batch in (False, True):
        prefix = f"{'many' if batch else 'one'}-{uuid.uuid4().hex[:6]}"
        runs: list[int] = []
        events = SchedulingCaseEvents(horizon_days=14)
        events._accepted = _spy(runs, events._accepted)  # type: ignore[method-assign,assignment]
        await _run(scheduling_pool, events.handler(), _scheduling_mix(prefix), batch=batch)
        states[batch] = await _state(scheduling_pool, prefix, times=False)
        assert runs == ([3, 1] if batch else [1] * 4)

    assert states[True] == states[False]
    state = states[True]
    assert state["dead"] == [0]
    assert [(c[0], c[4]) for c in state["cases"]] == [
        ("-x", "routine"),
        ("-y", "routine"),  # its first acceptance's
        ("-z", "routine"),
    ]
    # X's visit was planned on review, then closed with the case.
    assert [(t[0], t[4]) for t in state["tasks"]] == [("-x", "cancelled")]
    assert state["outbox"]  # the review planned a visit and said so on care.cases
