"""The social workers' portal on a real broker and PostgreSQL (a process of its own, see
portal_helpers): a submission is the contract's event on the hospital's topic with the
hospital's own ce_source; a bad form sends nothing and names its fields; a frozen broker
loses nothing; updates show by sequence with gaps; the contract's actions go out; and a
user never reaches another hospital's referral (404)."""

from __future__ import annotations

import json
import re
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import pytest

from contracts import hospital_v1 as hv1
from contracts import topics
from contracts.cloudevents import Envelope
from services.portal import labels
from services.tools.localinfra import Endpoints, Infrastructure
from tests.integration.portal_helpers import RunningPortal, signed_in, start_portal, valid_form
from tests.integration.runtime_helpers import produce, read_records, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.fixture(scope="module")
def portal(
    endpoints: Endpoints, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningPortal]:
    running = start_portal(endpoints, tmp_path_factory.mktemp("portal"))
    try:
        yield running
    finally:
        running.process.stop()


@pytest.fixture
async def client_a(portal: RunningPortal) -> AsyncIterator[httpx.AsyncClient]:
    client = await signed_in(portal, portal.hospitals[0])
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def client_b(portal: RunningPortal) -> AsyncIterator[httpx.AsyncClient]:
    client = await signed_in(portal, portal.hospitals[1])
    try:
        yield client
    finally:
        await client.aclose()


async def _submit(client: httpx.AsyncClient, values: dict[str, list[str]]) -> httpx.Response:
    return await client.post("/referrals/new", data={**values, "intent": ["submit"]})


async def _records_of(
    endpoints: Endpoints, hospital_id: str, referral_id: str, count: int
) -> list[Any]:
    records = await read_records(
        endpoints,
        topics.referrals(hospital_id),
        0,
        partitions=topics.HOSPITAL_PARTITIONS,
        linger=1.0,
    )
    mine = [r for r in records if r.key == referral_id.encode()]
    assert len(mine) >= count, f"{len(mine)} of {count} records of {referral_id}"
    return mine


async def _outbox(portal: RunningPortal) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(portal.database_url)
    try:
        rows: list[asyncpg.Record] = await conn.fetch(
            "SELECT id, published_at FROM outbox ORDER BY id"
        )
        return rows
    finally:
        await conn.close()


async def test_a_submission_is_the_contracts_event_on_the_hospitals_topic_with_its_own_source(
    portal: RunningPortal, client_a: httpx.AsyncClient, endpoints: Endpoints
) -> None:
    hospital = portal.hospitals[0]
    values = valid_form(hospital)
    rid = values["referral_id"][0]
    answer = await _submit(client_a, values)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/referrals/" + urllib.parse.quote(rid, safe="") + (
        "?notice=submitted"
    )

    async def published() -> bool:
        rows = await _outbox(portal)
        return bool(rows) and all(r["published_at"] for r in rows)

    await wait_until(published, timeout=20, what="outbox published")
    [record] = await _records_of(endpoints, hospital, rid, 1)
    envelope = Envelope.from_headers(record.headers)
    assert envelope.source == f"hospital/{hospital}"
    assert envelope.type == hv1.SUBMITTED
    sent = hv1.ReferralSubmitted.model_validate_json(record.value)
    assert sent.hospital_id == hospital
    assert sent.referral_id == rid
    assert sent.patient.name == values["patient.name"][0]
    assert [s.value for s in sent.requested_services] == values["requested_services"]
    # The same number again is refused next to its field, and nothing more is sent.
    again = await _submit(client_a, values)
    assert again.status_code == 422
    assert labels.ACTION_ERRORS["duplicate-id"] in _error_of(again.text, "referral_id")


def _error_of(page: str, name: str) -> str:
    html_id = "f-" + name.replace(".", "-").replace("_", "-")
    match = re.search(rf'<p class="field-error" id="err-{html_id}">([^<]*)</p>', page)
    assert match, f"no error box for {name}"
    return match.group(1)


async def test_a_bad_form_sends_nothing_and_says_what_is_wrong_next_to_each_field(
    portal: RunningPortal, client_a: httpx.AsyncClient
) -> None:
    before = await _outbox(portal)
    values = valid_form(
        portal.hospitals[0],
        **{"patient.name": "", "patient.household_size": "11", "requested_services": []},
    )
    values["admission_date"] = ["2026-12-10"]
    values["expected_discharge_date"] = ["2026-12-01"]
    answer = await _submit(client_a, values)
    assert answer.status_code == 422
    page = answer.text
    assert _error_of(page, "patient.name") == labels.REQUIRED
    assert "Must be at most 10" in _error_of(page, "patient.household_size")
    assert "Choose at least one" in _error_of(page, "requested_services")
    assert "admission date" in _error_of(page, "expected_discharge_date")
    assert _error_of(page, "patient.sex") == ""
    assert len(await _outbox(portal)) == len(before)


async def test_a_draft_is_saved_incomplete_and_submitted_later(
    portal: RunningPortal, client_a: httpx.AsyncClient
) -> None:
    values = valid_form(portal.hospitals[0])
    partial = {k: v for k, v in values.items() if not k.startswith("consent")}
    saved = await client_a.post("/referrals/new", data={**partial, "intent": ["save"]})
    assert saved.status_code == 303
    draft_url = saved.headers["location"].split("?")[0]
    page = await client_a.get(draft_url)
    assert values["patient.name"][0] in page.text
    listing = await client_a.get("/")
    assert draft_url in listing.text
    sent = await client_a.post(draft_url, data={**values, "intent": ["submit"]})
    assert sent.status_code == 303
    assert (await client_a.get(draft_url)).status_code == 404  # no longer a draft


async def test_a_frozen_broker_loses_nothing(
    portal: RunningPortal,
    client_a: httpx.AsyncClient,
    endpoints: Endpoints,
    infrastructure: Infrastructure,
) -> None:
    if endpoints.kind != "embedded":
        pytest.skip("freezing the broker needs the embedded servers")
    hospital = portal.hospitals[0]
    values = valid_form(hospital)
    rid = values["referral_id"][0]
    infrastructure.freeze_broker()
    try:
        answer = await _submit(client_a, values)
        waiting = [r for r in await _outbox(portal) if r["published_at"] is None]
    finally:
        infrastructure.thaw_broker()
    assert answer.status_code == 303
    assert waiting, "the submission waits in the outbox"

    async def arrived() -> bool:
        records = await read_records(
            endpoints,
            topics.referrals(hospital),
            0,
            partitions=topics.HOSPITAL_PARTITIONS,
            linger=0.5,
        )
        return any(r.key == rid.encode() for r in records)

    await wait_until(arrived, timeout=30, interval=0.5, what="the submission published")


def _update(rid: str, sequence: int, status: str, business: str, **extra: object) -> bytes:
    return json.dumps(
        {
            "referral_id": rid,
            "case_id": "case-portal",
            "sequence": sequence,
            "status": status,
            "business_status": business,
            "occurred_at": "2026-12-02T09:00:00+00:00",
            **extra,
        }
    ).encode()


def _headers() -> list[tuple[str, bytes]]:
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", uuid.uuid4().hex.encode()),
        ("ce_source", b"carelink/outcome"),
        ("ce_type", hv1.STATUS_CHANGED.encode()),
        ("ce_time", b"2026-12-02T09:00:00+00:00"),
        ("content-type", b"application/json"),
    ]


async def test_updates_by_sequence_with_the_gap_shown_and_the_contracts_actions(
    portal: RunningPortal, client_a: httpx.AsyncClient, endpoints: Endpoints
) -> None:
    hospital = portal.hospitals[0]
    values = valid_form(hospital)
    rid = values["referral_id"][0]
    assert (await _submit(client_a, values)).status_code == 303
    key = rid.encode()
    await produce(
        endpoints,
        topics.updates(hospital),
        [
            (key, _update(rid, 1, "received", "received"), _headers()),
            (key, _update(rid, 2, "received", "triaged"), _headers()),
            (key, _update(rid, 4, "in-progress", "pre-discharge-visit-scheduled"), _headers()),
        ],
    )
    # The same referral id on a hospital the portal does not serve: never read.
    await produce(
        endpoints,
        topics.updates(portal.other_hospital),
        [(key, _update(rid, 3, "accepted", "reviewed"), _headers())],
    )
    token = await _api_token(portal, hospital)
    api = {"authorization": f"Bearer {token}"}

    async def three_updates() -> bool:
        answer = await client_a.get(f"/api/referrals/{rid}", headers=api)
        return answer.status_code == 200 and len(answer.json()["timeline"]) == 4

    await wait_until(three_updates, timeout=30, interval=0.3, what="updates shown")
    detail = (await client_a.get(f"/api/referrals/{rid}", headers=api)).json()
    kinds = [(i["kind"], i["sequence"] or i["first_missing"]) for i in detail["timeline"]]
    assert kinds == [("update", 1), ("update", 2), ("gap", 3), ("update", 4)]
    assert detail["status"] == "in-progress"
    page = (await client_a.get("/referrals/" + rid)).text
    assert 'class="gap"' in page
    assert "pre-discharge-visit-scheduled" in page

    base = "/referrals/" + urllib.parse.quote(rid, safe="")
    moved = await client_a.post(
        f"{base}/discharge-date", data={"expected_discharge_date": "2026-12-20"}
    )
    assert moved.status_code == 303
    left = await client_a.post(f"{base}/discharge", data={"discharged_at": "2026-12-20T10:30"})
    assert left.status_code == 303
    twice = await client_a.post(f"{base}/discharge", data={"discharged_at": "2026-12-20T10:31"})
    assert twice.status_code == 409
    records = await _records_of(endpoints, hospital, rid, 3)
    by_type = {Envelope.from_headers(r.headers).type: r for r in records}
    assert set(by_type) == {hv1.SUBMITTED, hv1.UPDATED, hv1.DISCHARGED}
    updated = hv1.ReferralUpdated.model_validate_json(by_type[hv1.UPDATED].value)
    assert str(updated.expected_discharge_date) == "2026-12-20"
    discharged = hv1.PatientDischarged.model_validate_json(by_type[hv1.DISCHARGED].value)
    assert discharged.discharged_at.isoformat() == "2026-12-20T10:30:00+09:00"

    # Completed: nothing more may be sent (cancel refused), the report is there.
    await produce(
        endpoints,
        topics.updates(hospital),
        [
            (key, _update(rid, 3, "accepted", "reviewed"), _headers()),
            (
                key,
                _update(
                    rid,
                    5,
                    "completed",
                    "closed",
                    details={
                        "outcome_report": {
                            "services_delivered": [],
                            "total_krw": 0,
                            "publicly_paid_krw": 0,
                            "self_paid_krw": 0,
                            "paid_by": "district",
                            "annual_cap_krw": 1,
                            "cap_remaining_krw": 1,
                            "care_precautions_acknowledged": True,
                            "follow_up_advice": "advice",
                        }
                    },
                ),
                _headers(),
            ),
        ],
    )

    async def completed() -> bool:
        answer = await client_a.get(f"/api/referrals/{rid}", headers=api)
        return bool(answer.json()["status"] == "completed")

    await wait_until(completed, timeout=30, interval=0.3, what="completed shown")
    refused = await client_a.post(f"{base}/cancel", data={"reason_code": "transferred"})
    assert refused.status_code == 409
    assert labels.ACTION_ERRORS["terminal"] in refused.text
    report = await client_a.get(f"{base}/report")
    assert report.status_code == 200
    assert "advice" in report.text
    conn = await asyncpg.connect(portal.database_url)
    try:
        foreign = await conn.fetchval(
            "SELECT count(*) FROM hospital_updates WHERE hospital_id = $1", portal.other_hospital
        )
    finally:
        await conn.close()
    assert foreign == 0


async def _api_token(portal: RunningPortal, hospital: str) -> str:
    user = portal.users[hospital]
    async with httpx.AsyncClient(base_url=portal.url, timeout=20) as client:
        answer = await client.post(
            "/api/session", json={"username": user.username, "password": user.password}
        )
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["token"]
    return token


async def test_another_hospitals_referral_and_draft_are_404_everywhere(
    portal: RunningPortal, client_a: httpx.AsyncClient, client_b: httpx.AsyncClient
) -> None:
    # A referral id the contract allows that is not one path segment.
    rid = f"2026/{uuid.uuid4().hex[:8]}?#%"
    values = valid_form(portal.hospitals[0], referral_id=rid)
    assert (await _submit(client_a, values)).status_code == 303
    saved = await client_a.post(
        "/referrals/new", data={**values, "referral_id": ["x"], "intent": ["save"]}
    )
    draft_url = saved.headers["location"].split("?")[0]
    base = "/referrals/" + urllib.parse.quote(rid, safe="")
    assert (await client_a.get(base)).status_code == 200
    token_b = await _api_token(portal, portal.hospitals[1])
    api_b = {"authorization": f"Bearer {token_b}"}
    assert (await client_b.get(base)).status_code == 404
    assert (await client_b.get(f"{base}/report")).status_code == 404
    api_url = "/api/referrals/" + urllib.parse.quote(rid, safe="")
    token_a = await _api_token(portal, portal.hospitals[0])
    mine = await client_a.get(api_url, headers={"authorization": f"Bearer {token_a}"})
    assert mine.json()["referral_id"] == rid
    assert (await client_b.get(api_url, headers=api_b)).status_code == 404
    assert (await client_b.get(draft_url)).status_code == 404
    for action, data in (
        ("cancel", {"reason_code": "transferred"}),
        ("discharge", {"discharged_at": "2026-12-20T10:30"}),
        ("discharge-date", {"expected_discharge_date": "2026-12-20"}),
    ):
        assert (await client_b.post(f"{base}/{action}", data=data)).status_code == 404
    assert (await client_b.post(draft_url, data={**values, "intent": ["save"]})).status_code == 404
    listing = (await client_b.get("/")).text
    assert rid not in listing
    assert rid not in json.dumps((await client_b.get("/api/referrals", headers=api_b)).json())
    async with httpx.AsyncClient(base_url=portal.url, timeout=20) as stranger:
        assert (await stranger.get("/api/referrals")).status_code == 401
        assert (await stranger.get(base, follow_redirects=False)).status_code == 303
