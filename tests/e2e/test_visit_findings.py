"""Visit findings are codes, end to end over the real broker and PostgreSQL: a coordinator
records a visit with finding codes and a free-text note holding a canary value. The
codes travel (care.cases, outcome, the hospital's update with both labels); the canary
stays in scheduling's store and appears in no care.cases record, no outcome row, no
hospital update and no log line. Typed as a finding, the canary is refused with the
field named and the value not echoed."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from contracts import topics
from services.lib.policy import load_findings
from services.tools.simulators.console_client import ApiError
from services.tools.simulators.hospital_io import UpdatesReader
from services.tools.simulators.referrals import FakeHospital
from services.tools.simulators.staff import Staff
from services.tools.stack import SystemInfo
from tests.e2e.flow import Referral

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

POLICE = "police-hospital"
WAIT = 30.0
VOCABULARY = load_findings()
PRE_FINDINGS = ["fall-risk", "medication-help"]
POST_FINDINGS = ["home-safety-checked", "needs-meal-support"]


@pytest.fixture
async def reader(system_info: SystemInfo) -> AsyncIterator[UpdatesReader]:
    async with UpdatesReader(system_info.kafka_bootstrap, topics.updates(POLICE)) as updates:
        yield updates


def _forms(value: str) -> list[bytes]:
    """The value as raw UTF-8 and as JSON writes it with ensure_ascii (\\uXXXX escapes)."""
    return sorted({value.encode(), json.dumps(value)[1:-1].encode()})


def _holds(blob: bytes, value: str) -> bool:
    return any(form in blob for form in _forms(value))


async def _read_whole_topic(bootstrap: str, topic: str) -> list[bytes]:
    """Every record of a topic up to its current end: key, value and headers as bytes."""
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


async def _database_rows(url: str) -> list[bytes]:
    """Every row of every table of a service's database, each as bytes (bytea as is)."""
    conn = await asyncpg.connect(url)
    try:
        tables = await conn.fetch(
            "SELECT schemaname, tablename FROM pg_tables"
            " WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
        )
        rows: list[bytes] = []
        for table in tables:
            name = f'"{table["schemaname"]}"."{table["tablename"]}"'
            for row in await conn.fetch(f"SELECT * FROM {name}"):
                rows.append(
                    b"\n".join(v if isinstance(v, bytes) else str(v).encode() for v in row.values())
                )
        return rows
    finally:
        await conn.close()


def _read_logs(log_dir: Path) -> dict[Path, bytes]:
    """Every log file of the system: the services', the console's, their stderr."""
    return {path: path.read_bytes() for path in sorted(log_dir.iterdir()) if path.is_file()}


def _labelled(codes: list[str]) -> list[dict[str, Any]]:
    found = [VOCABULARY.get(code) for code in codes]
    return [f.summary() for f in found if f is not None]


async def test_a_visit_note_stays_in_scheduling_while_the_finding_codes_travel(
    system_info: SystemInfo, staff: Staff, reader: UpdatesReader, log_dir: Path
) -> None:
    tag = uuid.uuid4().hex[:10]
    # A note as a coordinator writes it: a name, a phone number, a door code.
    note_pre = f"카나리아{tag} 김순자님 010-4821-{tag[:4]} 현관 비밀번호 {tag[-4:]}"
    note_post = f"canary-post-{tag}: daughter visits Sundays only"
    typed_as_finding = f"canary-{tag}"  # shaped like a code, in no vocabulary
    canaries = {"note_pre": note_pre, "note_post": note_post, "finding": typed_as_finding}

    hospital = FakeHospital(POLICE)
    r = Referral(reader, hospital, staff, services=["meal_delivery"])
    await r.submit()
    await staff.review(r.case_id)
    await r.until("pre-discharge-visit-scheduled")

    task = await staff.claim(await staff.task(r.case_id, "pre-discharge-visit"))
    desk = staff.desk(task.centre_id)
    # Free text typed as a finding: refused by the console's API, the field named.
    with pytest.raises(ApiError) as refused:
        await desk.visit(task, findings=["fall-risk", note_pre], notes=None)
    assert (refused.value.status, refused.value.code) == (422, "invalid-request")
    assert "findings.1" in refused.value.message
    assert tag not in refused.value.message
    # A code-shaped value the vocabulary lacks: refused by scheduling, the field named.
    with pytest.raises(ApiError) as refused:
        await desk.visit(task, findings=[typed_as_finding, "fall-risk"], notes=None)
    assert (refused.value.status, refused.value.code) == (422, "invalid-request")
    assert "findings.0" in refused.value.message
    assert tag not in refused.value.message
    # The visit as recorded: codes, and the canary in the note.
    done = await desk.visit(task, findings=PRE_FINDINGS, notes=note_pre)
    assert done.outcome == "visited"
    assert done.task.result is not None
    assert done.task.result["findings"] == PRE_FINDINGS
    assert note_pre not in json.dumps(done.task.result, ensure_ascii=False)

    pre_done = await r.until("pre-discharge-visit-done")
    assert pre_done.data["details"]["findings"] == _labelled(PRE_FINDINGS)
    assert {f["code"] for f in pre_done.data["details"]["findings"]} == set(PRE_FINDINGS)
    assert all(f["label"]["ko"] and f["label"]["en"] for f in pre_done.data["details"]["findings"])

    answer = await staff.plan(r.case_id, [("meal_delivery", 10)])
    assert answer["outcome"] == "plan", answer
    await r.until("services-ordered")
    await r.send(hospital.discharged(r.referral_id))
    await r.until("post-discharge-visit-scheduled")
    await staff.visit(r.case_id, "post-discharge-visit", findings=POST_FINDINGS, notes=note_post)
    post_done = await r.until("post-discharge-visit-done")
    assert post_done.data["details"]["findings"] == _labelled(POST_FINDINGS)
    await r.deliver("full")
    await r.until("closed")
    r.assert_feed_legal()
    await asyncio.sleep(0.5)  # the last lines of a handler that has just committed

    # Control: both notes reached scheduling's store, and stay there.
    conn = await asyncpg.connect(system_info.databases["scheduling"])
    try:
        notes = await conn.fetch(
            "SELECT n.notes FROM visit_notes n JOIN tasks t ON t.id = n.task_id"
            " WHERE t.case_id = $1",
            r.case_id,
        )
    finally:
        await conn.close()
    assert sorted(row["notes"] for row in notes) == sorted([note_pre, note_post])

    # care.cases: the codes travel, the canaries do not.
    cases = await _read_whole_topic(system_info.kafka_bootstrap, topics.CASES)
    ours = [blob for blob in cases if r.case_id.encode() in blob]
    visits = [blob for blob in ours if b"carelink.case.visit-done.v1" in blob]
    assert len(visits) == 2, len(visits)
    for code in PRE_FINDINGS + POST_FINDINGS:
        assert any(code.encode() in blob for blob in visits), code
    for name, value in canaries.items():
        assert not any(_holds(blob, value) for blob in cases), f"{name} on care.cases"

    # The hospital's updates: the whole topic, every referral.
    updates = await _read_whole_topic(system_info.kafka_bootstrap, topics.updates(POLICE))
    assert any(b"fall-risk" in blob for blob in updates)
    for name, value in canaries.items():
        assert not any(_holds(blob, value) for blob in updates), f"{name} in a hospital update"

    # Outcome's database: the case, the feeds, the outbox, the inbox.
    rows = await _database_rows(system_info.databases["outcome"])
    assert any(r.case_id.encode() in row and b"fall-risk" in row for row in rows)
    for name, value in canaries.items():
        assert not any(_holds(row, value) for row in rows), f"{name} in an outcome row"

    # No log line of any service or the console holds them either.
    logs = await asyncio.to_thread(_read_logs, log_dir)
    assert any(path.name.startswith("console") for path in logs)
    for path, blob in logs.items():
        for name, value in canaries.items():
            assert not _holds(blob, value), f"{name} in {path.name}"
