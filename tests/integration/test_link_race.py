"""Regression: a referral that joins a person's case just as it closes gets a case of
its own (found by the hospital simulator: intake learns of closures a moment after
hospitals do, so it may still link a new referral to a case that has just closed)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from contracts.cloudevents import Envelope
from contracts.intake import CaseLinked
from contracts.outcome import CaseLinkDeclined
from contracts.topics import CASES
from services.intake import domain as intake_domain
from services.intake.usecases import Intake
from services.lib.policy import load_policies, load_registry
from services.lib.runtime import db
from services.lib.runtime.outbox import decode_headers
from services.lib.runtime.pipeline import Record
from services.outcome.usecases import Outcome
from services.tools.localinfra import Endpoints, ensure_databases
from services.tools.simulators.referrals import FakeHospital

pytestmark = pytest.mark.integration

SERVICES = Path(__file__).parents[2] / "services"


async def _database(endpoints: Endpoints, service: str) -> str:
    name = f"lr_{service}_{uuid.uuid4().hex[:8]}"
    url = (await ensure_databases(endpoints.postgres_url, [name]))[name]
    conn = await asyncpg.connect(url)
    try:
        await db.init_connection(conn)
        await db.migrate(
            conn,
            db.load_migrations(
                [("runtime", db.RUNTIME_MIGRATIONS), (service, SERVICES / service / "migrations")]
            ),
        )
    finally:
        await conn.close()
    return url


def _record(event: object, offset: int) -> Record:
    envelope = Envelope.new(source="test", type=event.ce_type, subject=event.case_id)  # type: ignore[attr-defined]
    return Record(
        topic=CASES,
        partition=0,
        offset=offset,
        key=event.case_id.encode(),  # type: ignore[attr-defined]
        value=event.model_dump_json().encode(),
        headers=tuple(envelope.to_headers()),  # type: ignore[attr-defined]
    )


async def _outbox_types(conn: asyncpg.Connection) -> list[tuple[str, bytes, dict[str, object]]]:
    rows = await conn.fetch("SELECT topic, key, value, headers FROM outbox ORDER BY id")
    return [
        (dict(decode_headers(r["headers"]))["ce_type"].decode(), r["topic"], json.loads(r["value"]))
        for r in rows
    ]


async def test_a_link_to_a_closed_case_sends_nothing_and_asks_intake_for_a_new_case(
    endpoints: Endpoints,
) -> None:
    url = await _database(endpoints, "outcome")
    conn = await asyncpg.connect(url)
    await db.init_connection(conn)
    try:
        await conn.execute(
            "INSERT INTO cases (case_id, status, business_status) VALUES ('case-1', 'completed', 'closed')"
        )
        linked = CaseLinked(
            case_id="case-1",
            hospital_id="severance",
            referral_id="ref-late",
            occurred_at=datetime.now(UTC),
        )
        async with conn.transaction():
            await Outcome().handle(conn, _record(linked, 1))
        sent = await _outbox_types(conn)
        follows = await conn.fetchval(
            "SELECT count(*) FROM referrals WHERE referral_id = 'ref-late'"
        )
    finally:
        await conn.close()
    assert [t for t, _, _ in sent] == [CaseLinkDeclined.ce_type]
    assert follows == 0  # the late referral heard nothing about the closed case


async def test_intake_gives_a_declined_referral_a_case_of_its_own(endpoints: Endpoints) -> None:
    url = await _database(endpoints, "intake")
    hospital = FakeHospital("severance")
    data = hospital.submission(district="Seodaemun-gu")
    from contracts.hospital_v1 import ReferralSubmitted

    sub = ReferralSubmitted.model_validate(data)
    conn = await asyncpg.connect(url)
    await db.init_connection(conn)
    try:
        await conn.execute(
            "INSERT INTO cases (case_id, person_id, open) VALUES ('case-old', 'person-1', false)"
        )
        await conn.execute(
            "INSERT INTO persons (patient_key, person_id) VALUES ($1, 'person-1')",
            intake_domain.patient_key(sub),
        )
        await conn.execute(
            """INSERT INTO referrals (hospital_id, referral_id, case_id, content_hash, outcome, submission)
               VALUES ('severance', $1, 'case-old', 'h', 'linked', $2)""",
            sub.referral_id,
            data,
        )
        declined = CaseLinkDeclined(
            case_id="case-old",
            hospital_id="severance",
            referral_id=sub.referral_id,
            occurred_at=datetime.now(UTC),
        )
        intake = Intake(policies=load_policies(), registry=load_registry())
        async with conn.transaction():
            await intake.handle(conn, _record(declined, 7))
        async with conn.transaction():  # a redelivery changes nothing
            await intake.handle(conn, _record(declined, 7))
        sent = await _outbox_types(conn)
        moved = await conn.fetchrow(
            "SELECT case_id, outcome FROM referrals WHERE referral_id = $1", sub.referral_id
        )
    finally:
        await conn.close()
    assert [t for t, _, _ in sent] == ["carelink.case.received.v1", "carelink.case.accepted.v1"]
    new_case = sent[0][2]["case_id"]
    assert new_case != "case-old"
    assert sent[1][2]["person_id"] == "person-1"
    assert (moved["case_id"], moved["outcome"]) == (new_case, "accepted")
