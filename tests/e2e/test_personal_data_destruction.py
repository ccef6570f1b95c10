"""PIPA destruction end to end (real broker, PostgreSQL, the services as processes):
canary values (fake ko_KR personal data carrying a unique marker) are planted through
the real flow, in the hospital's submission and correction, a coordinator's visit note
and cancellation note; once destroyed, the marker is in no column of any table of any
service's database, while the case's pseudonymous facts and the destruction log stay.

Three ways in: a coordinator's cancellation for withdrawn consent (at once), the
hospital's own cancellation for withdrawn consent (at once), and a closed case whose
retention period has ended (its closure moved back in intake's database, as other
tests move a lease on), previewed and destroyed with `carelink personal-data`."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from faker import Faker

from contracts import topics
from services.tools.cli.main import main as carelink
from services.tools.simulators.hospital_io import UpdatesReader
from services.tools.simulators.referrals import FakeHospital
from services.tools.simulators.staff import Staff
from services.tools.stack import LocalSystem, SystemInfo
from tests.e2e.flow import Referral

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

POLICE = "police-hospital"
WAIT = 45.0
FAKE = Faker("ko_KR")


@pytest.fixture
async def reader(system_info: SystemInfo) -> AsyncIterator[UpdatesReader]:
    async with UpdatesReader(system_info.kafka_bootstrap, topics.updates(POLICE)) as updates:
        yield updates


def canary_submission(marker: str) -> dict[str, Any]:
    """Personal fields of a submission, each fake (ko_KR) and carrying the marker."""
    return {
        "care_precautions": f"낙상 위험 {marker}",
        "social_worker": {
            "name": f"{FAKE.name()} {marker}",
            "phone": FAKE.phone_number(),
            "email": f"{marker}@example.kr",
        },
    }


def with_canary_patient(data: dict[str, Any], marker: str) -> dict[str, Any]:
    patient = dict(data["patient"])
    patient["name"] = f"{FAKE.name()}{marker}"
    patient["phone"] = f"{FAKE.phone_number()} {marker}"
    patient["address"] = {**patient["address"], "street": f"{FAKE.street_address()} {marker}"}
    return {**data, "patient": patient}


async def where_found(databases: dict[str, str], marker: str) -> list[str]:
    """Every service database, every table, every column that could hold text
    (text, varchar, json, jsonb, arrays, bytea): `db.table.column` where the marker is."""
    found: list[str] = []
    for service, url in sorted(databases.items()):
        conn = await asyncpg.connect(url)
        try:
            columns = await conn.fetch(
                """SELECT table_schema, table_name, column_name, data_type
                   FROM information_schema.columns
                   WHERE table_schema NOT IN ('pg_catalog', 'information_schema')
                     AND data_type IN ('text', 'character varying', 'character', 'json',
                                       'jsonb', 'ARRAY', 'bytea', 'USER-DEFINED')"""
            )
            assert columns, f"no columns found in {service}'s database"
            for c in columns:
                column = f'"{c["table_schema"]}"."{c["table_name"]}"."{c["column_name"]}"'
                table, name = column.rsplit(".", 1)
                test = (
                    f"position(convert_to($1, 'UTF8') in {name}) > 0"
                    if c["data_type"] == "bytea"
                    else f"{name}::text LIKE '%' || $1 || '%'"
                )
                if await conn.fetchval(
                    f"SELECT EXISTS (SELECT 1 FROM {table} WHERE {test})", marker
                ):
                    found.append(f"{service}.{c['table_name']}.{c['column_name']}")
        finally:
            await conn.close()
    return found


async def until_gone(databases: dict[str, str], marker: str) -> None:
    """The other services delete their free text when they read intake's event: wait."""
    deadline = time.monotonic() + WAIT
    while found := await where_found(databases, marker):
        assert time.monotonic() < deadline, f"the marker is still in {found}"
        await asyncio.sleep(0.5)


async def until_found(databases: dict[str, str], marker: str, where: set[str]) -> None:
    deadline = time.monotonic() + WAIT
    while not where <= set(found := await where_found(databases, marker)):
        assert time.monotonic() < deadline, f"planted in {where}, found only in {found}"
        await asyncio.sleep(0.5)


async def destruction_log(intake_url: str, case_id: str) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(intake_url)
    try:
        rows = await conn.fetch(
            "SELECT reason, fields FROM personal_data_destructions WHERE case_id = $1", case_id
        )
        facts = await conn.fetchrow(
            """SELECT c.person_id, c.open, c.personal_data_destroyed_at, r.outcome, r.submission
               FROM cases c JOIN referrals r USING (case_id) WHERE c.case_id = $1""",
            case_id,
        )
    finally:
        await conn.close()
    # The pseudonymous facts stay: the case, its opaque person, the referral's outcome.
    assert facts is not None
    assert facts["person_id"].startswith("person-")
    assert facts["open"] is False
    assert facts["personal_data_destroyed_at"] is not None
    assert facts["outcome"] == "accepted"
    assert facts["submission"] is None
    return [dict(r) for r in rows]


async def test_consent_withdrawn_by_the_centre_destroys_the_case_everywhere_at_once(
    system_info: SystemInfo, staff: Staff, reader: UpdatesReader
) -> None:
    marker = f"canary{uuid.uuid4().hex[:12]}"
    hospital = FakeHospital(POLICE)
    r = Referral(reader, hospital, staff, services=["meal_delivery"], **canary_submission(marker))
    r.data = with_canary_patient(r.data, marker)
    await r.submit()
    await r.send(hospital.updated(r.referral_id, care_precautions=f"저염식 {marker}"))
    await staff.review(r.case_id)
    await r.until("pre-discharge-visit-scheduled")
    task = await staff.task(r.case_id, "pre-discharge-visit")
    await staff.visit(
        r.case_id, "pre-discharge-visit", notes=f"{FAKE.name()}님 현관 비밀번호 {marker}"
    )
    # Control: the scan finds what was planted, where it was planted.
    await until_found(
        system_info.databases,
        marker,
        {
            "intake.referrals.submission",
            "intake.referral_events.data",
            "scheduling.visit_notes.notes",
        },
    )

    await staff.desk(task.centre_id).cancel_case(
        r.case_id, "consent-withdrawn", note=f"보호자 {FAKE.name()} 요청 {marker}"
    )
    await r.until("consent-withdrawn")
    await until_gone(system_info.databases, marker)

    log = await destruction_log(system_info.databases["intake"], r.case_id)
    assert len(log) == 1
    assert log[0]["reason"] == "consent-withdrawn"
    assert {"referrals.submission", "referral_events.data", "case_exits.note"} <= set(
        log[0]["fields"]
    )
    # The visit itself stays in scheduling (a done task with its finding codes), its note not.
    conn = await asyncpg.connect(system_info.databases["scheduling"])
    try:
        visits = await conn.fetch(
            "SELECT status, result FROM tasks WHERE case_id = $1 AND kind = 'pre-discharge-visit'",
            r.case_id,
        )
    finally:
        await conn.close()
    assert [v["status"] for v in visits] == ["done"]


async def test_consent_withdrawn_by_the_hospital_destroys_the_case_at_once(
    system_info: SystemInfo, reader: UpdatesReader, staff: Staff
) -> None:
    marker = f"canary{uuid.uuid4().hex[:12]}"
    hospital = FakeHospital(POLICE)
    r = Referral(reader, hospital, staff, **canary_submission(marker))
    r.data = with_canary_patient(r.data, marker)
    await r.submit()
    await until_found(system_info.databases, marker, {"intake.referrals.submission"})
    await r.send(hospital.cancelled(r.referral_id, reason_code="consent-withdrawn"))
    await until_gone(system_info.databases, marker)
    log = await destruction_log(system_info.databases["intake"], r.case_id)
    assert [entry["reason"] for entry in log] == ["consent-withdrawn"]


async def test_a_case_past_its_retention_is_previewed_and_destroyed_with_the_cli(
    system: LocalSystem,
    system_info: SystemInfo,
    staff: Staff,
    reader: UpdatesReader,
    capsys: pytest.CaptureFixture[str],
) -> None:
    marker = f"canary{uuid.uuid4().hex[:12]}"
    hospital = FakeHospital(POLICE)
    r = Referral(reader, hospital, staff, **canary_submission(marker))
    r.data = with_canary_patient(r.data, marker)
    await r.submit()
    task = await staff.task(r.case_id, "review")
    await staff.desk(task.centre_id).cancel_case(r.case_id, "deceased", note=f"유족 {marker}")
    await r.until("deceased")
    # Closed for another reason: kept for the retention period.
    await until_found(
        system_info.databases, marker, {"intake.referrals.submission", "intake.case_exits.note"}
    )

    def cli(*argv: str) -> Any:
        code = carelink([*argv, "--json", "--system", str(system.base_dir / "system.json")])
        out = capsys.readouterr().out
        assert code == 0, out
        return json.loads(out)

    before = await asyncio.to_thread(cli, "personal-data", "preview")
    assert r.case_id not in {d["case_id"] for d in before["due"]}
    # Six years on for this case alone: its closure moved back (5 years' retention).
    conn = await asyncpg.connect(system_info.databases["intake"])
    try:
        await conn.execute(
            "UPDATE cases SET closed_at = closed_at - interval '6 years' WHERE case_id = $1",
            r.case_id,
        )
    finally:
        await conn.close()
    preview = await asyncio.to_thread(cli, "personal-data", "preview")
    assert r.case_id in {d["case_id"] for d in preview["due"]}
    assert set(preview["retention_years"].values()) == {5}
    await until_found(system_info.databases, marker, {"intake.referrals.submission"})

    run = await asyncio.to_thread(cli, "personal-data", "destroy")
    ours = [d for d in run["destroyed"] if d["case_id"] == r.case_id]
    assert len(ours) == 1
    assert ours[0]["reason"] == "retention-expired"
    await until_gone(system_info.databases, marker)
    log = await asyncio.to_thread(cli, "personal-data", "log")
    assert any(
        d["case_id"] == r.case_id and d["reason"] == "retention-expired"
        for d in log["destructions"]
    )
    assert [
        e["reason"] for e in await destruction_log(system_info.databases["intake"], r.case_id)
    ] == ["retention-expired"]
    again = await asyncio.to_thread(cli, "personal-data", "preview")
    assert r.case_id not in {d["case_id"] for d in again["due"]}


async def test_only_the_operator_token_opens_the_destruction_routes(system: LocalSystem) -> None:
    assert system.info is not None
    parts = system.info.health["intake"].split("/health/")[0]
    routes = [
        ("GET", "/v1/personal-data/destruction", None),
        ("POST", "/v1/personal-data/destruction", {"limit": 1}),
        ("GET", "/v1/personal-data/destructions", None),
    ]
    async with httpx.AsyncClient(base_url=parts, timeout=20) as api:
        for method, path, body in routes:
            anonymous = await api.request(method, path, json=body)
            assert anonymous.status_code == 401, (method, path)
            console = await api.request(
                method,
                path,
                json=body,
                headers={"Authorization": f"Bearer {system.console_token}"},
            )
            assert console.status_code == 403, (method, path)
            assert console.json()["error"] == "forbidden"
        operator = await api.get(
            "/v1/personal-data/destructions",
            headers={"Authorization": f"Bearer {system.operator_token}"},
        )
        assert operator.status_code == 200
