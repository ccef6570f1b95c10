"""Finding and following cases through the console (issue 10), against the running
system's real services: the queue's columns, filters, sorts and pages; search by
referral id, case id and name with birth date (audited by intake); the case page
with its timeline, the updates sent with their sequence, and the same person's
earlier closed case.

One scenario for the module (referrals take seconds to become tasks); the console
runs in-process against the services, as in test_console_gateway.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest

from services.console.app import create_app
from services.console.settings import ConsoleSettings
from services.intake.cards import initials
from services.tools.simulators.hospital_io import publish
from services.tools.simulators.referrals import FakeHospital
from services.tools.stack import LocalSystem, SystemInfo

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

WAIT = 60.0


@pytest.fixture(scope="module")
async def client(system: LocalSystem, system_info: SystemInfo) -> AsyncIterator[httpx.AsyncClient]:
    urls = {
        f"{name}_url": system_info.health[name].removesuffix("/health/ready")
        for name in ("intake", "referral", "scheduling", "outcome")
    }
    app = create_app(ConsoleSettings(api_token=system.console_token, **urls))  # type: ignore[arg-type]
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://console", timeout=30
        ) as http,
    ):
        yield http


@pytest.fixture(scope="module")
async def songpa(client: httpx.AsyncClient) -> dict[str, str]:
    r = await client.post("/api/login", json={"username": "songpa", "password": "songpa-demo"})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


async def until(what: str, probe: Callable[[], Awaitable[Any]]) -> Any:
    deadline = time.monotonic() + WAIT
    while True:
        found = await probe()
        if found:
            return found
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        await asyncio.sleep(0.3)


async def case_of(intake_db: asyncpg.Connection, referral_id: str) -> str:
    async def probe() -> str | None:
        case_id: str | None = await intake_db.fetchval(
            "SELECT case_id FROM referrals WHERE referral_id = $1 AND outcome = 'accepted'",
            referral_id,
        )
        return case_id

    found: str = await until(f"case of {referral_id}", probe)
    return found


async def queue_rows(
    client: httpx.AsyncClient, headers: dict[str, str], case_ids: set[str], **params: Any
) -> list[dict[str, Any]]:
    r = await client.get("/api/queue", params={"limit": 1000, **params}, headers=headers)
    assert r.status_code == 200, r.text
    return [t for t in r.json()["tasks"] if t["case_id"] in case_ids]


@pytest.fixture(scope="module")
async def scenario(
    client: httpx.AsyncClient, songpa: dict[str, str], system_info: SystemInfo
) -> dict[str, Any]:
    """Two Songpa referrals from two hospitals and one from Gangnam, all reviewed-ready."""
    police, samsung = FakeHospital("police-hospital"), FakeHospital("kangbuk-samsung")
    late = police.submission(district="Songpa-gu", discharge_in_days=9, age=77)
    soon = samsung.submission(district="Songpa-gu", discharge_in_days=2, priority="urgent")
    elsewhere = police.submission(district="Gangnam-gu")
    await publish(
        system_info.kafka_bootstrap,
        [police.submitted(late), samsung.submitted(soon), police.submitted(elsewhere)],
    )
    intake_db = await asyncpg.connect(system_info.databases["intake"])
    try:
        cases = {
            "late": await case_of(intake_db, late["referral_id"]),
            "soon": await case_of(intake_db, soon["referral_id"]),
            "elsewhere": await case_of(intake_db, elsewhere["referral_id"]),
        }
    finally:
        await intake_db.close()
    ours = {cases["late"], cases["soon"]}
    await until(
        "both review tasks",
        lambda: _both(client, songpa, ours),
    )
    return {"police": police, "data": {"late": late, "soon": soon, "elsewhere": elsewhere}, **cases}


async def _both(client: httpx.AsyncClient, headers: dict[str, str], ours: set[str]) -> bool:
    return len(await queue_rows(client, headers, ours, kind="review")) == 2


async def test_queue_rows_show_hospital_area_initials_age_band_and_discharge_and_no_more(
    client: httpx.AsyncClient, songpa: dict[str, str], scenario: dict[str, Any]
) -> None:
    late = scenario["data"]["late"]
    (row,) = await queue_rows(client, songpa, {scenario["late"]})

    assert row["hospital_id"] == "police-hospital"
    assert row["expected_discharge_date"] == late["expected_discharge_date"]
    assert row["card"] == {
        "case_id": scenario["late"],
        "open": True,
        "initials": initials(late["patient"]["name"]),
        "age_band": "75-79",
        "district": "Songpa-gu",
        "dong": late["patient"]["address"]["dong"],
    }
    text = str(row)
    for personal in (
        late["patient"]["name"],
        late["patient"]["birth_date"],
        late["patient"]["phone"],
    ):
        assert personal not in text


async def test_queue_filters_by_hospital_and_sorts_by_expected_discharge(
    client: httpx.AsyncClient, songpa: dict[str, str], scenario: dict[str, Any]
) -> None:
    ours = {scenario["late"], scenario["soon"]}

    police_only = await queue_rows(client, songpa, ours, hospital="police-hospital")
    by_discharge = await queue_rows(client, songpa, ours, sort="discharge")
    unknown = await client.get("/api/queue", params={"hospital": "no-such"}, headers=songpa)

    assert [t["case_id"] for t in police_only] == [scenario["late"]]
    assert [t["case_id"] for t in by_discharge] == [scenario["soon"], scenario["late"]]
    # A hospital id the registry lacks is well formed (the OpenAPI document's pattern), so
    # it is a filter that matches nothing, not a refused request (schemathesis, issue 10).
    assert unknown.status_code == 200
    assert unknown.json()["tasks"] == []


async def test_pages_of_one_follow_the_cursor_through_the_whole_queue_once(
    client: httpx.AsyncClient, songpa: dict[str, str], scenario: dict[str, Any]
) -> None:
    whole = await client.get(
        "/api/queue", params={"limit": 1000, "sort": "deadline"}, headers=songpa
    )
    expected = [(t["service"], t["id"]) for t in whole.json()["tasks"]]
    seen: list[tuple[str, int]] = []
    params: dict[str, Any] = {"limit": 3, "sort": "deadline"}
    for _ in range(len(expected) + 2):
        r = await client.get("/api/queue", params=params, headers=songpa)
        assert r.status_code == 200, r.text
        seen += [(t["service"], t["id"]) for t in r.json()["tasks"]]
        if not r.json()["next"]:
            break
        params["after"] = r.json()["next"]
    # Other tests' tasks may come and go meanwhile; ours stay, in order, each once.
    assert len(seen) == len(set(seen))
    mine = [k for k in seen if k in set(expected)]
    assert mine == [k for k in expected if k in set(seen)]
    wrong_sort = await client.get(
        "/api/queue", params={"sort": "created", "after": params.get("after", "x")}, headers=songpa
    )
    # A cursor of another sort names no page of this one (404: a cursor is opaque, so the
    # OpenAPI document cannot call it malformed; schemathesis, issue 10).
    assert wrong_sort.status_code == 404
    assert wrong_sort.json()["error"] == "not-found"


async def test_search_by_referral_id_case_id_and_name_finds_only_the_centres_cases_audited(
    client: httpx.AsyncClient,
    songpa: dict[str, str],
    scenario: dict[str, Any],
    intake_db: asyncpg.Connection,
) -> None:
    late = scenario["data"]["late"]
    before = await intake_db.fetchval("SELECT count(*) FROM search_audit WHERE viewer = 'songpa'")

    by_ref = await client.post(
        "/api/search", json={"referral_id": late["referral_id"]}, headers=songpa
    )
    by_case = await client.post("/api/search", json={"case_id": scenario["late"]}, headers=songpa)
    by_name = await client.post(
        "/api/search",
        json={
            "name": f"  {late['patient']['name']} ",
            "birth_date": late["patient"]["birth_date"],
        },
        headers=songpa,
    )
    other_centre = await client.post(
        "/api/search",
        json={"referral_id": scenario["data"]["elsewhere"]["referral_id"]},
        headers=songpa,
    )
    two_ways = await client.post(
        "/api/search", json={"case_id": "x", "referral_id": "y"}, headers=songpa
    )

    for answer in (by_ref, by_case, by_name):
        assert answer.status_code == 200, answer.text
        assert [c["case_id"] for c in answer.json()["results"]] == [scenario["late"]]
    assert by_name.json()["searched_by"] == "name-birth-date"
    assert by_ref.json()["results"][0]["referrals"][0]["referral_id"] == late["referral_id"]
    assert other_centre.json()["results"] == []
    assert two_ways.status_code == 422
    rows = await intake_db.fetch(
        "SELECT searched_by, found FROM search_audit WHERE viewer = 'songpa' ORDER BY id"
    )
    assert len(rows) == before + 4
    assert [(r["searched_by"], r["found"]) for r in rows[-4:]] == [
        ("referral-id", 1),
        ("case-id", 1),
        ("name-birth-date", 1),
        ("referral-id", 0),
    ]
    views = await intake_db.fetchval(
        "SELECT count(*) FROM access_audit WHERE case_id = $1 AND purpose = 'search'",
        scenario["late"],
    )
    assert views >= 3
    audited = " ".join(
        str(v) for r in await intake_db.fetch("SELECT * FROM search_audit") for v in r
    )
    assert late["patient"]["name"] not in audited


async def test_case_page_shows_tasks_updates_with_their_sequence_and_links_an_earlier_case(
    client: httpx.AsyncClient,
    songpa: dict[str, str],
    scenario: dict[str, Any],
    system_info: SystemInfo,
    intake_db: asyncpg.Connection,
) -> None:
    police: FakeHospital = scenario["police"]
    late = scenario["data"]["late"]
    case = await client.get(f"/api/cases/{scenario['late']}", headers=songpa)
    assert case.status_code == 200, case.text
    body = case.json()
    assert [t["kind"] for t in body["tasks"]][:1] == ["review"]
    assert [(u["sequence"], u["business_status"]) for u in body["updates"]][:2] == [
        (1, "received"),
        (2, "triaged"),
    ]
    assert body["card"]["initials"] == initials(late["patient"]["name"])
    assert body["report"] is None
    other = await client.get(f"/api/cases/{scenario['elsewhere']}", headers=songpa)
    assert other.status_code == 404

    # The hospital withdraws the referral; later it refers the same person again.
    again = police.submission(
        district="Songpa-gu", patient={**late["patient"], "phone": "010-0000-0000"}
    )
    await publish(system_info.kafka_bootstrap, [police.cancelled(late["referral_id"])])
    await until(
        "the first case to close",
        lambda: intake_db.fetchval(
            "SELECT NOT open FROM cases WHERE case_id = $1", scenario["late"]
        ),
    )
    await publish(system_info.kafka_bootstrap, [police.submitted(again)])
    new_case = await case_of(intake_db, again["referral_id"])
    assert new_case != scenario["late"]

    later = await client.get(f"/api/cases/{new_case}", headers=songpa)
    page = await client.get(f"/cases/{new_case}", headers=songpa)

    assert [e["case_id"] for e in later.json()["earlier"]] == [scenario["late"]]
    assert later.json()["earlier"][0]["open"] is False
    assert page.status_code == 200
    assert f'href="/cases/{scenario["late"]}"' in page.text
    assert "돌봄 결과 보고서" in page.text
    assert 'data-testid="case-actions"' in page.text  # the exits' forms (exits.py)
    assert late["patient"]["name"] not in page.text


async def test_search_page_posts_the_query_and_links_each_case(
    client: httpx.AsyncClient, songpa: dict[str, str], scenario: dict[str, Any]
) -> None:
    soon = scenario["data"]["soon"]
    page = await client.post(
        "/search",
        data={
            "by": "name-birth-date",
            "name": soon["patient"]["name"],
            "birth_date": soon["patient"]["birth_date"],
        },
        headers=songpa,
    )
    empty = await client.post(
        "/search", data={"by": "name-birth-date", "name": "x"}, headers=songpa
    )

    assert page.status_code == 200, page.text
    assert f'href="/cases/{scenario["soon"]}"' in page.text
    assert soon["patient"]["name"] in page.text  # the form keeps what was typed
    assert empty.status_code == 422
    assert "birth date" in empty.text
