"""Hospitals are isolated from each other, and metrics carry no personal data.

Every check reads the updates topics in full (from the beginning to their end, assigned
partitions, no group), as an auditor would: a referral id (or case) of one hospital must
never appear on another hospital's topic, also when both hospitals send at the same time,
when they happen to use the same referral id, and when they refer the same patient (one
linked case: each hospital hears every step under its own referral id only).
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from contracts import topics
from services.lib.runtime.deadletter import SOURCE_OFFSET_HEADER, SOURCE_PARTITION_HEADER
from services.tools.simulators import hospital_io
from services.tools.simulators.hospital_io import Update, UpdatesReader, publish
from services.tools.simulators.referrals import FakeHospital, HospitalRecord
from services.tools.simulators.staff import Staff
from services.tools.stack import SystemInfo
from services.tools.stack.deployables import SERVICES
from tests.e2e.feeds import assert_feed_legal

pytestmark = pytest.mark.e2e

POLICE = "police-hospital"
SEVERANCE = "severance"
WAIT = 45.0

Seen = dict[str, list[Update]]


# ------------------------------------------------------------------ helpers


async def read_to_end(bootstrap: str, topic: str) -> list[tuple[str, str]]:
    return await hospital_io.read_to_end(bootstrap, topic, timeout=WAIT)


class Audit:
    """Both hospitals' updates topics, read in full."""

    def __init__(self, records: dict[str, list[tuple[str, str]]]) -> None:
        self.raw = records
        self.data: dict[str, list[dict[str, Any]]] = {
            hospital: [json.loads(value) for _, value in items]
            for hospital, items in records.items()
        }

    @classmethod
    async def read(cls, bootstrap: str, hospitals: Sequence[str] = (POLICE, SEVERANCE)) -> Audit:
        return cls({h: await read_to_end(bootstrap, topics.updates(h)) for h in hospitals})

    def mentions(self, hospital: str, text: str) -> list[str]:
        """Records of this hospital's topic whose key or value contains the text anywhere."""
        return [
            f"{key}: {value[:200]}"
            for key, value in self.raw[hospital]
            if text in key or text in value
        ]

    def updates(self, hospital: str, referral_id: str) -> list[dict[str, Any]]:
        return [d for d in self.data[hospital] if d["referral_id"] == referral_id]


def unique_patient(hospital: FakeHospital, label: str, **kwargs: Any) -> dict[str, Any]:
    data = hospital.submission(**kwargs)
    data["patient"]["name"] = f"격리 {label} {uuid.uuid4().hex[:10]}"
    return data


def reached(referral_id: str, *statuses: str) -> Callable[[Seen], bool]:
    return lambda seen: any(u.data["status"] in statuses for u in seen.get(referral_id, []))


def reached_step(referral_id: str, business_status: str) -> Callable[[Seen], bool]:
    return lambda seen: any(
        u.data["business_status"] == business_status for u in seen.get(referral_id, [])
    )


def all_of(*conditions: Callable[[Seen], bool]) -> Callable[[Seen], bool]:
    return lambda seen: all(condition(seen) for condition in conditions)


def any_of(*conditions: Callable[[Seen], bool]) -> Callable[[Seen], bool]:
    return lambda seen: any(condition(seen) for condition in conditions)


def assert_gap_free(updates: Sequence[dict[str, Any]]) -> None:
    """A legal, gap-free feed of the contract."""
    assert_feed_legal(updates)


# ------------------------------------------------------------------ isolation


async def test_concurrent_referrals_stay_with_their_hospital(system_info: SystemInfo) -> None:
    bootstrap = system_info.kafka_bootstrap
    hospitals = {POLICE: FakeHospital(POLICE), SEVERANCE: FakeHospital(SEVERANCE)}
    sent: dict[str, list[dict[str, Any]]] = defaultdict(list)
    records: dict[str, list[HospitalRecord]] = defaultdict(list)
    for hospital_id, hospital in hospitals.items():
        batch = [unique_patient(hospital, hospital_id, age=60 + i) for i in range(4)]
        batch.append(unique_patient(hospital, hospital_id, age=30))  # ineligible: rejected
        batch.append(unique_patient(hospital, hospital_id, household_size=0))  # invalid
        sent[hospital_id] = batch
        records[hospital_id] = [hospital.submitted(data) for data in batch]

    ids = {h: [d["referral_id"] for d in batch] for h, batch in sent.items()}
    async with (
        UpdatesReader(bootstrap, topics.updates(POLICE)) as police,
        UpdatesReader(bootstrap, topics.updates(SEVERANCE)) as severance,
    ):
        # Both hospitals at the same time, interleaved on the wire.
        await asyncio.gather(*(publish(bootstrap, rs) for rs in records.values()))
        for reader, hospital_id in ((police, POLICE), (severance, SEVERANCE)):
            await reader.wait_for(
                all_of(
                    *(
                        any_of(reached_step(r, "triaged"), reached(r, "rejected"))
                        for r in ids[hospital_id]
                    )
                ),
                timeout=WAIT,
            )
        cases = {
            hospital_id: {reader.by_referral[r][0].data["case_id"] for r in ids[hospital_id]}
            for reader, hospital_id in ((police, POLICE), (severance, SEVERANCE))
        }

    audit = await Audit.read(bootstrap)
    for own, other in ((POLICE, SEVERANCE), (SEVERANCE, POLICE)):
        for referral_id in ids[own]:
            assert audit.updates(own, referral_id), f"{referral_id} missing on {own}'s topic"
            assert not audit.mentions(other, referral_id), f"{referral_id} on {other}'s topic"
        for case_id in cases[own]:
            assert not audit.mentions(other, case_id), f"{own}'s {case_id} on {other}'s topic"
    assert not cases[POLICE] & cases[SEVERANCE]


async def test_the_same_referral_id_at_two_hospitals_stays_two_referrals(
    system_info: SystemInfo,
) -> None:
    """Referral ids are unique per hospital only: two hospitals may use the same one."""
    bootstrap = system_info.kafka_bootstrap
    shared = f"REF-{uuid.uuid4().hex[:12]}"
    police, severance = FakeHospital(POLICE), FakeHospital(SEVERANCE)
    ours = unique_patient(police, "same-id", referral_id=shared, age=70)
    theirs = unique_patient(severance, "same-id", referral_id=shared, age=81)

    async with (
        UpdatesReader(bootstrap, topics.updates(POLICE)) as police_updates,
        UpdatesReader(bootstrap, topics.updates(SEVERANCE)) as severance_updates,
    ):
        await asyncio.gather(
            publish(bootstrap, [police.submitted(ours)]),
            publish(bootstrap, [severance.submitted(theirs)]),
        )
        await police_updates.wait_for(reached_step(shared, "triaged"), timeout=WAIT)
        await severance_updates.wait_for(reached_step(shared, "triaged"), timeout=WAIT)

    audit = await Audit.read(bootstrap)
    on_police, on_severance = audit.updates(POLICE, shared), audit.updates(SEVERANCE, shared)
    police_cases = {u["case_id"] for u in on_police}
    severance_cases = {u["case_id"] for u in on_severance}
    assert len(police_cases) == 1, on_police
    assert len(severance_cases) == 1, on_severance
    assert police_cases != severance_cases  # two patients, two cases
    # Each hospital's own gap-free sequence: the other's updates never count in it.
    assert_gap_free(on_police)
    assert_gap_free(on_severance)
    for feed in (on_police, on_severance):
        assert [(u["status"], u["business_status"]) for u in feed] == [
            ("received", "received"),
            ("received", "triaged"),
        ]
    assert not audit.mentions(POLICE, severance_cases.pop())
    assert not audit.mentions(SEVERANCE, police_cases.pop())


async def test_a_linked_case_answers_each_hospital_under_its_own_referral_id(
    system_info: SystemInfo, staff: Staff
) -> None:
    bootstrap = system_info.kafka_bootstrap
    police, severance = FakeHospital(POLICE), FakeHospital(SEVERANCE)
    first = unique_patient(police, "linked", age=77)
    # The same person (name and birth date) referred by the other hospital, its own id.
    second = severance.submission(age=77)
    second["patient"] = copy.deepcopy(first["patient"])
    first_id, second_id = first["referral_id"], second["referral_id"]

    async with (
        UpdatesReader(bootstrap, topics.updates(POLICE)) as police_updates,
        UpdatesReader(bootstrap, topics.updates(SEVERANCE)) as severance_updates,
    ):
        await publish(bootstrap, [police.submitted(first)])
        seen = await police_updates.wait_for(reached_step(first_id, "triaged"), timeout=WAIT)
        case_id = seen[first_id][0].data["case_id"]
        await publish(bootstrap, [severance.submitted(second)])
        seen = await severance_updates.wait_for(reached_step(second_id, "triaged"), timeout=WAIT)
        assert seen[second_id][0].data["case_id"] == case_id, "not linked: the same person"

        # A later step is told to both, each under its own referral id.
        await staff.review(case_id)
        step = "pre-discharge-visit-scheduled"
        await police_updates.wait_for(reached_step(first_id, step), timeout=WAIT)
        await severance_updates.wait_for(reached_step(second_id, step), timeout=WAIT)

        # The Police Hospital naming the other hospital's referral id reaches nothing of
        # theirs: no referral of its own by that id, so the record is dead-lettered.
        probe = police.cancelled(second_id)
        offset = await _send_and_get_offset(bootstrap, probe)
        await _wait_for_dead_letter(bootstrap, topics.dead_letters(probe.topic), offset)
        await asyncio.sleep(1)
        await severance_updates.poll()
        assert not reached(second_id, "cancelled")(severance_updates.by_referral)

    audit = await Audit.read(bootstrap)
    assert not audit.mentions(POLICE, second_id), "Severance's referral id on Police's topic"
    assert not audit.mentions(SEVERANCE, first_id), "Police's referral id on Severance's topic"
    for hospital, referral_id in ((POLICE, first_id), (SEVERANCE, second_id)):
        updates = audit.updates(hospital, referral_id)
        assert {u["case_id"] for u in updates} == {case_id}
        assert_gap_free(updates)
        assert step in [u["business_status"] for u in updates]
    # The case's updates on each topic are all under that hospital's own referral id.
    for hospital, referral_id in ((POLICE, first_id), (SEVERANCE, second_id)):
        on_topic = [d for d in audit.data[hospital] if d["case_id"] == case_id]
        assert {d["referral_id"] for d in on_topic} == {referral_id}


async def _send_and_get_offset(bootstrap: str, record: HospitalRecord) -> tuple[int, int]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        sent = await (
            await producer.send(
                record.topic, key=record.key, value=record.value, headers=record.headers
            )
        )
    finally:
        await producer.stop()
    return sent.partition, sent.offset


async def _wait_for_dead_letter(bootstrap: str, dlq: str, source: tuple[int, int]) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        assigned = [
            TopicPartition(dlq, p) for p in await hospital_io.topic_partitions(consumer, dlq)
        ]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200, max_records=500)
            for records in batches.values():
                for record in records:
                    headers = dict(record.headers)
                    if (
                        int(headers[SOURCE_PARTITION_HEADER]),
                        int(headers[SOURCE_OFFSET_HEADER]),
                    ) == source:
                        return
        raise TimeoutError(f"no dead letter for {source} on {dlq}")
    finally:
        await consumer.stop()


# ------------------------------------------------------------------ metrics privacy


def _personal(hospital: FakeHospital) -> tuple[dict[str, Any], list[str]]:
    """A valid submission whose personal values occur nowhere else, and those values."""
    tag = uuid.uuid4().hex[:8]
    digits = f"{int(tag, 16) % 10_000:04d}"
    data = hospital.submission(age=68)
    patient = data["patient"]
    patient["name"] = f"지표검사{tag}"
    patient["phone"] = f"010-7{digits[:3]}-3{digits}"
    patient["address"]["street"] = f"사생활로 {digits}길 {tag}"
    patient["address"]["detail"] = f"{digits}호 {tag}"
    data["social_worker"] = {
        "name": f"복지사{tag}",
        "phone": f"02-5{digits}-4{digits}",
        "email": f"sw-{tag}@example.org",
    }
    data["care_precautions"] = f"당뇨 인슐린 {tag}, 낙상 주의"
    values = [
        patient["name"],
        patient["phone"],
        patient["address"]["street"],
        patient["address"]["detail"],
        patient["birth_date"],
        data["social_worker"]["name"],
        data["social_worker"]["phone"],
        data["social_worker"]["email"],
        data["care_precautions"],
    ]
    return data, values


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:  # loopback only
        assert response.status == 200
        return str(response.read().decode("utf-8"))


async def test_metrics_never_show_personal_values(system_info: SystemInfo, staff: Staff) -> None:
    bootstrap = system_info.kafka_bootstrap
    hospital = FakeHospital(POLICE)
    accepted, values = _personal(hospital)
    # The same person's values also in a record refused by the contract and in a keyless one.
    refused = {**copy.deepcopy(accepted), "referral_id": f"ref-{uuid.uuid4()}", "priority": "soon"}
    referral_id = accepted["referral_id"]
    keyless = hospital.submitted(refused)

    async with UpdatesReader(bootstrap, topics.updates(POLICE)) as reader:
        await publish(bootstrap, [hospital.submitted(accepted), hospital.submitted(refused)])
        seen = await reader.wait_for(reached_step(referral_id, "triaged"), timeout=WAIT)
        await reader.wait_for(reached(refused["referral_id"], "rejected"), timeout=WAIT)
        # Through all four services: a coordinator's review makes scheduling plan a visit.
        await staff.review(seen[referral_id][0].data["case_id"])
        await reader.wait_for(
            reached_step(referral_id, "pre-discharge-visit-scheduled"), timeout=WAIT
        )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await (
            await producer.send(
                keyless.topic, key=None, value=keyless.value, headers=keyless.headers
            )
        )
    finally:
        await producer.stop()
    await asyncio.sleep(2)  # the dead letter is counted by now

    assert set(system_info.metrics) == set(SERVICES)
    for service, url in system_info.metrics.items():
        text = _get(url)
        assert "carelink_messages_total" in text, service
        for value in values:
            for form in {
                value,
                json.dumps(value)[1:-1],
                json.dumps(value, ensure_ascii=False)[1:-1],
            }:
                assert form not in text, f"{service} /metrics shows {value!r}"
