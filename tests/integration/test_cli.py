"""`carelink` against the running system: real broker, real PostgreSQL, four services.

Commands run in-process through `main(argv)` (in a worker thread, as each runs its
own event loop), reading a system.json written from the session's SystemInfo.
Figures derived from end offsets are checked for shape only: the local Tansu broker's
end offsets are approximate.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from contracts import topics
from services.tools.cli import main as cli
from services.tools.cli.connect import load_system
from services.tools.cli.dlq import REPLAYS_TOPIC
from services.tools.cli.topics import fetch_one
from services.tools.simulators.hospital_io import UpdatesReader, publish
from services.tools.simulators.referrals import FakeHospital
from services.tools.stack import SystemInfo
from services.tools.stack.deployables import SERVICES
from tests.conftest import SESSION

pytestmark = pytest.mark.integration

HOSPITAL = "police-hospital"
REFERRALS = topics.referrals(HOSPITAL)
DLQ = topics.dead_letters(REFERRALS)


@pytest.fixture
def system_file(system_info: SystemInfo, tmp_path: Path) -> Path:
    path = tmp_path / "system.json"
    path.write_text(json.dumps(dataclasses.asdict(system_info)))
    return path


async def carelink(
    capsys: pytest.CaptureFixture[str], system_file: Path, *argv: str
) -> tuple[int, str]:
    capsys.readouterr()
    code = await asyncio.to_thread(cli.main, [*argv, "--system", str(system_file)])
    return code, capsys.readouterr().out


async def carelink_json(
    capsys: pytest.CaptureFixture[str], system_file: Path, *argv: str
) -> tuple[int, Any]:
    code, out = await carelink(capsys, system_file, *argv, "--json")
    return code, json.loads(out)


async def test_trace_shows_a_referrals_history_in_order_without_personal_data(
    system_info: SystemInfo, system_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hospital = FakeHospital(HOSPITAL)
    submission = hospital.submission()
    referral_id = submission["referral_id"]
    async with UpdatesReader(system_info.kafka_bootstrap, topics.updates(HOSPITAL)) as reader:
        await publish(system_info.kafka_bootstrap, [hospital.submitted(submission)])
        seen = await reader.wait_for(
            lambda s: any(u.data["business_status"] == "triaged" for u in s[referral_id]),
            timeout=30,
        )
    case_id = seen[referral_id][0].data["case_id"]

    code, found = await carelink_json(capsys, system_file, "trace", referral_id)
    assert code == cli.EXIT_OK
    assert found["case_ids"] == [case_id]
    assert found["referral_ids"] == [referral_id]
    events = found["events"]
    types = [e["ce_type"] for e in events]
    assert types.index("carelink.referral.submitted.v1") < types.index("carelink.case.received.v1")
    assert types.index("carelink.case.received.v1") < types.index("carelink.case.accepted.v1")
    updates = [e["fields"] for e in events if e["topic"] == topics.updates(HOSPITAL)]
    assert [(u["sequence"], u["status"], u["business_status"]) for u in updates[:2]] == [
        (1, "received", "received"),
        (2, "received", "triaged"),
    ]
    [submitted] = [e for e in events if e["topic"] == REFERRALS]
    assert submitted["fields"] == {}
    assert submitted["size"] > 0

    code, text = await carelink(capsys, system_file, "trace", case_id)
    assert code == cli.EXIT_OK
    assert text.index("carelink.case.received.v1") < text.index("carelink.case.accepted.v1")
    assert "business_status=triaged" in text

    patient, worker = submission["patient"], submission["social_worker"]
    personal = [
        patient["name"],
        patient["phone"],
        patient["birth_date"],
        patient["address"]["street"],
        worker["name"],
        worker["phone"],
        worker["email"],
        submission["care_precautions"],
    ]
    shown = json.dumps(found, ensure_ascii=False) + text
    for value in personal:
        assert value not in shown


async def test_dead_letter_is_listed_and_replayed_once(
    system_info: SystemInfo, system_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = uuid.uuid4().hex.encode()
    producer = AIOKafkaProducer(bootstrap_servers=system_info.kafka_bootstrap)
    await producer.start()
    try:
        sent = await producer.send_and_wait(
            REFERRALS, value=b"<<not json " + marker + b">>", headers=[("x-test", marker)]
        )
    finally:
        await producer.stop()

    def ours(row: dict[str, Any]) -> bool:
        return (
            row["source_topic"] == REFERRALS
            and row["source_partition"] == sent.partition
            and row["source_offset"] == sent.offset
        )

    deadline = time.monotonic() + 30
    while True:
        code, listed = await carelink_json(capsys, system_file, "dlq", "list", "--topic", DLQ)
        assert code == cli.EXIT_OK
        mine = [r for r in listed["dead_letters"] if ours(r)]
        if mine:
            break
        assert time.monotonic() < deadline, "the record was not dead-lettered within 30 s"
        await asyncio.sleep(0.5)
    [dead] = mine
    assert dead["topic"] == DLQ
    assert dead["key"] is None
    assert "no usable key" in dead["error"]
    assert dead["consumer"] == "intake"
    assert dead["replayed"] is False
    assert "value" not in dead
    position = (DLQ, str(dead["partition"]), str(dead["offset"]))

    code, shown = await carelink_json(capsys, system_file, "dlq", "show", *position)
    assert code == cli.EXIT_OK
    assert "value" not in shown
    assert {"name": "x-test", "value": marker.decode()} in shown["headers"]

    code, dry = await carelink_json(capsys, system_file, "dlq", "replay", *position, "--dry-run")
    assert (code, [r["action"] for r in dry["replays"]]) == (cli.EXIT_OK, ["would-replay"])

    code, first = await carelink_json(capsys, system_file, "dlq", "replay", *position)
    assert code == cli.EXIT_OK
    [replayed] = first["replays"]
    assert replayed["action"] == "replayed"
    assert (replayed["topic"], replayed["partition"]) == (REFERRALS, sent.partition)

    system = load_system(system_file, {})
    again = await fetch_one(system, REFERRALS, replayed["partition"], replayed["offset"])
    assert again is not None
    assert again.value == b"<<not json " + marker + b">>"
    assert again.key is None
    headers = dict(again.headers)
    assert headers["x-test"] == marker
    assert headers["carelink_replay"] == ":".join(position).encode()
    assert not any(name.startswith("carelink_dlq_") for name in headers)

    code, second = await carelink_json(capsys, system_file, "dlq", "replay", *position)
    assert code == cli.EXIT_OK
    assert [r["action"] for r in second["replays"]] == ["skipped"]

    code, listed = await carelink_json(capsys, system_file, "dlq", "list", "--topic", DLQ)
    assert [r["replayed"] for r in listed["dead_letters"] if ours(r)] == [True]
    code, figures = await carelink_json(capsys, system_file, "topics", "--interval", "0.1")
    assert {"topic": REPLAYS_TOPIC, "partitions": 1}.items() <= next(
        t for t in figures["topics"] if t["topic"] == REPLAYS_TOPIC
    ).items()


async def test_topics_lists_every_topic_with_partitions(
    system_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, figures = await carelink_json(capsys, system_file, "topics", "--interval", "0.2")
    assert code == cli.EXIT_OK
    by_name = {t["topic"]: t for t in figures["topics"]}
    updates = by_name[topics.updates(HOSPITAL)]
    assert updates["partitions"] == 3
    assert len(updates["end_offsets"]) == 3
    assert updates["total"] == sum(updates["end_offsets"])
    assert by_name[topics.CASES]["partitions"] == topics.CASES_PARTITIONS
    assert not any(name.startswith("__") for name in by_name)
    code, text = await carelink(capsys, system_file, "topics", "--interval", "0.1")
    assert code == cli.EXIT_OK
    assert topics.updates(HOSPITAL) in text


async def test_outbox_shows_the_four_services(
    system_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, backlog = await carelink_json(capsys, system_file, "outbox")
    assert code == cli.EXIT_OK
    assert [r["service"] for r in backlog["services"]] == list(SERVICES)
    for row in backlog["services"]:
        assert row["error"] is None
        assert isinstance(row["unpublished"], int)
        assert row["unpublished"] >= 0


async def test_lag_lists_the_carelink_groups(
    system_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = f"t{SESSION}_"
    code, lag = await carelink_json(capsys, system_file, "lag", "--group-prefix", prefix)
    assert code == cli.EXIT_OK
    groups = {g["group"]: g for g in lag["groups"]}
    assert list(groups) == [f"{prefix}carelink-{s}" for s in SERVICES]
    for service in SERVICES:
        group = groups[f"{prefix}carelink-{service}"]
        assert group["service"] == service
        names = [t["topic"] for t in group["topics"]]
        assert topics.CASES in names
        assert (REFERRALS in names) == (service == "intake")
        for topic in group["topics"]:
            for p in topic["partitions"]:
                assert set(p) == {
                    "partition",
                    "committed",
                    "start",
                    "end",
                    "lag",
                    "committed_beyond_end",
                }
                assert p["lag"] >= 0
        assert group["lag"] == sum(t["lag"] for t in group["topics"])


async def test_status_is_ready_for_every_service(
    system_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, status = await carelink_json(capsys, system_file, "status")
    assert code == cli.EXIT_OK
    assert {r["service"]: r["ready"] for r in status["services"]} == dict.fromkeys(SERVICES, True)
