"""Operations and privacy, end to end: every service answers its health and metrics
endpoints, and a referral's personal data reaches neither the logs nor care.cases."""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from contracts import topics
from services.lib.runtime.health import health_app
from services.tools.simulators.hospital_io import UpdatesReader, publish
from services.tools.simulators.referrals import FakeHospital
from services.tools.simulators.staff import Staff
from services.tools.stack import SystemInfo
from services.tools.stack.deployables import SERVICES

pytestmark = pytest.mark.e2e

HOSPITAL = "police-hospital"
WAIT = 30.0
INCOME = 1_234_567


def _get(url: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # loopback only
            return response.status, response.read(), response.headers.get("content-type", "")
    except urllib.error.HTTPError as exc:  # a 503 is an answer too: report it, do not raise
        return exc.code, exc.read(), exc.headers.get("content-type", "")


def _live_url(ready_url: str) -> str:
    assert ready_url.endswith("/health/ready")
    return ready_url.removesuffix("/health/ready") + "/health/live"


# ------------------------------------------------------------------ health and metrics


def test_every_service_is_listed(system_info: SystemInfo) -> None:
    assert set(system_info.health) == set(SERVICES)
    assert set(system_info.metrics) == set(SERVICES)
    assert set(system_info.logs) == set(SERVICES)
    assert set(SERVICES) == {"intake", "referral", "scheduling", "outcome"}


@pytest.mark.parametrize("service", SERVICES)
def test_ready_with_broker_and_database(system_info: SystemInfo, service: str) -> None:
    status, body, content_type = _get(system_info.health[service])
    assert status == 200, body
    assert content_type.startswith("application/json")
    answer = json.loads(body)
    assert answer["service"] == service
    assert answer["ready"] is True
    assert answer["checks"]["broker"] is True
    assert answer["checks"]["database"] is True


@pytest.mark.parametrize("service", SERVICES)
def test_live(system_info: SystemInfo, service: str) -> None:
    status, body, _ = _get(_live_url(system_info.health[service]))
    assert status == 200, body
    assert json.loads(body) == {"service": service, "live": True}


@pytest.mark.parametrize("service", SERVICES)
def test_metrics_expose_the_message_counter(system_info: SystemInfo, service: str) -> None:
    status, body, content_type = _get(system_info.metrics[service])
    assert status == 200
    assert content_type.startswith("text/plain")
    text = body.decode()
    assert "# TYPE carelink_messages_total counter" in text
    assert "# TYPE carelink_handler_seconds histogram" in text
    assert "# TYPE carelink_outbox_backlog gauge" in text


async def _asgi_get(app: Any, path: str) -> tuple[int, dict[str, Any]]:
    """One GET straight into the ASGI app: no server, no port."""
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [],
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 1),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await asyncio.wait_for(app(scope, receive, send), timeout=5)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body)


async def test_a_failing_or_hanging_check_answers_not_ready() -> None:
    """No servers: a dependency that raises or hangs gives 503 in bounded time, not 500."""

    async def ok() -> bool:
        return True

    async def raises() -> bool:
        raise ConnectionResetError("database went away")

    async def hangs() -> bool:
        await asyncio.sleep(3600)
        return True

    for broken in (raises, hangs):
        app = health_app(
            service="probe",
            live=lambda: True,
            checks={"broker": ok, "database": broken},
            check_timeout_s=0.3,
        )
        started = time.monotonic()
        status, answer = await _asgi_get(app, "/health/ready")
        assert status == 503, broken.__name__
        assert answer == {
            "service": "probe",
            "ready": False,
            "checks": {"broker": True, "database": False},
        }
        assert time.monotonic() - started < 2

    app = health_app(service="probe", live=lambda: False, checks={"broker": ok})
    assert await _asgi_get(app, "/health/live") == (503, {"service": "probe", "live": False})
    assert (await _asgi_get(app, "/health/ready"))[0] == 200


# ------------------------------------------------------------------ privacy


def _personal_submission(hospital: FakeHospital) -> tuple[dict[str, Any], dict[str, str]]:
    """A valid submission whose personal values occur nowhere else."""
    tag = uuid.uuid4().hex[:8]
    n = int(tag[:6], 16) % 10_000
    data = hospital.submission(age=77, monthly_income=INCOME, household_size=1)
    patient = data["patient"]
    patient["name"] = f"개인정보{tag}"
    patient["phone"] = f"010-{n:04d}-{(n * 7) % 10_000:04d}x{tag[:3]}"
    patient["address"]["street"] = f"비밀길 {n}-{tag}"
    patient["address"]["detail"] = f"{tag[:4]}동 {n}호"
    data["social_worker"]["name"] = f"사회복지{tag}"
    data["social_worker"]["phone"] = f"02-{n:04d}-{tag[-4:]}"
    data["social_worker"]["email"] = f"msw.{tag}@example.org"
    data["care_precautions"] = f"당뇨 인슐린 {tag}; 밤 배회 주의"
    values = {
        "patient.name": patient["name"],
        "patient.phone": patient["phone"],
        "patient.birth_date": patient["birth_date"],
        "patient.address.street": patient["address"]["street"],
        "patient.address.detail": patient["address"]["detail"],
        "social_worker.name": data["social_worker"]["name"],
        "social_worker.phone": data["social_worker"]["phone"],
        "social_worker.email": data["social_worker"]["email"],
        "care_precautions": data["care_precautions"],
        # Parts of free text, in case something logs a prefix or splits it.
        "care_precautions.part": f"인슐린 {tag}",
    }
    return data, values


def _forms(value: str) -> list[bytes]:
    """The value as raw UTF-8 and as JSON writes it with ensure_ascii (\\uXXXX escapes)."""
    forms = {value.encode(), json.dumps(value)[1:-1].encode()}
    return sorted(forms)


def _leaks(blob: bytes, values: dict[str, str]) -> list[str]:
    found = [name for name, value in values.items() if any(f in blob for f in _forms(value))]
    if re.search(rb"(?<![0-9])" + str(INCOME).encode() + rb"(?![0-9])", blob):
        found.append("patient.monthly_household_income_krw")
    return found


async def _read_whole_topic(bootstrap: str, topic: str) -> list[bytes]:
    """Every record of a topic up to its current end, as raw bytes (key, headers, value)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        for _ in range(50):
            if partitions:
                break
            await asyncio.sleep(0.1)
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic)
        assert partitions, f"{topic} does not exist"
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        ends = await consumer.end_offsets(assigned)
        blobs: list[bytes] = []
        deadline = time.monotonic() + WAIT
        while [tp for tp in assigned if await consumer.position(tp) < ends[tp]]:
            assert time.monotonic() < deadline, f"could not read {topic} to its end"
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batches.values():
                for record in records:
                    parts = [record.key or b"", record.value or b""]
                    parts += [name.encode() + b"=" + (v or b"") for name, v in record.headers]
                    blobs.append(b"\n".join(parts))
        return blobs
    finally:
        await consumer.stop()


def _read_logs(system_info: SystemInfo) -> dict[Path, bytes]:
    """Every service's JSON log, and its stderr file (crashes before logging is set up)."""
    contents: dict[Path, bytes] = {}
    for service in SERVICES:
        log = Path(system_info.logs[service])
        assert log.exists(), log
        contents[log] = log.read_bytes()
        stderr = log.with_suffix(".stderr")
        if stderr.exists():
            contents[stderr] = stderr.read_bytes()
    return contents


async def test_personal_data_stays_out_of_logs_and_care_cases(
    system_info: SystemInfo, staff: Staff
) -> None:
    hospital = FakeHospital(HOSPITAL)
    data, personal = _personal_submission(hospital)
    referral_id = data["referral_id"]
    bootstrap = system_info.kafka_bootstrap

    async with UpdatesReader(bootstrap, topics.updates(HOSPITAL)) as reader:
        await publish(bootstrap, [hospital.submitted(data)])
        seen = await reader.wait_for(
            lambda s: any(u.data["business_status"] == "triaged" for u in s[referral_id]),
            timeout=WAIT,
        )
        case_id = seen[referral_id][0].data["case_id"]
        # Let every service handle the case: referral (review), scheduling (visit), outcome.
        await staff.review(case_id, "eligible")
        seen = await reader.wait_for(
            lambda s: any(
                u.data["business_status"] == "pre-discharge-visit-scheduled" for u in s[referral_id]
            ),
            timeout=WAIT,
        )
    await asyncio.sleep(0.5)  # the last lines of a handler that has just committed

    # The hospital's own updates never echo the submission either.
    for update in seen[referral_id]:
        blob = json.dumps(update.data, ensure_ascii=False).encode()
        assert _leaks(blob, personal) == [], update.data

    logs = await asyncio.to_thread(_read_logs, system_info)
    assert case_id.encode() in logs[Path(system_info.logs["intake"])]  # logged, by its id
    for path, blob in logs.items():
        assert _leaks(blob, personal) == [], f"personal data in {path}"

    records = await _read_whole_topic(bootstrap, topics.CASES)
    ours = [blob for blob in records if case_id.encode() in blob]
    assert len(ours) >= 3  # received, accepted, and referral's / scheduling's events
    for blob in records:
        assert _leaks(blob, personal) == [], blob[:500]

    # Control: the same search does find every value where it belongs, on the hospital's
    # own topic (raw UTF-8) and in an ASCII-escaped JSON rendering of the submission.
    hospital_topic = await _read_whole_topic(bootstrap, topics.referrals(HOSPITAL))
    submitted = next(blob for blob in hospital_topic if referral_id.encode() in blob)
    expected = sorted([*personal, "patient.monthly_household_income_krw"])
    assert sorted(_leaks(submitted, personal)) == expected
    assert sorted(_leaks(json.dumps(data).encode(), personal)) == expected

    # Counted, by outcome label only.
    _, metrics, _ = await asyncio.to_thread(_get, system_info.metrics["intake"])
    handled = [
        line
        for line in metrics.decode().splitlines()
        if line.startswith("carelink_messages_total{")
        and 'service="intake"' in line
        and 'outcome="handled"' in line
    ]
    assert handled, metrics.decode()[:2000]
    assert float(handled[0].rsplit(" ", 1)[1]) >= 1
