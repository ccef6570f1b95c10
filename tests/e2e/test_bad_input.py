"""Bad input from a hospital never crashes or stalls a consumer, and is never dropped.

A record that names its referral (its key) gets `rejected` with a reason code and,
for contract failures, field-by-field errors without the submitted values; one that
cannot be tied to a referral goes to `hospital.<id>.referrals.dlq` with the reason.
The automatic rules (age, area, consent) and duplicates are exercised through the
real services too. Every record is published with raw aiokafka, as a hospital would.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import murmur2

from contracts import hospital_v1 as hv1
from contracts import topics
from contracts.cloudevents import Envelope
from services.lib.runtime.deadletter import (
    ERROR_HEADER,
    SOURCE_OFFSET_HEADER,
    SOURCE_PARTITION_HEADER,
    SOURCE_TOPIC_HEADER,
)
from services.tools.simulators.hospital_io import Update, UpdatesReader, publish
from services.tools.simulators.referrals import FakeHospital
from services.tools.simulators.staff import Staff
from services.tools.stack import SystemInfo
from tests.e2e.feeds import assert_feed_legal

pytestmark = pytest.mark.e2e

HOSPITAL = "police-hospital"
OTHER_HOSPITAL = "severance"
TOPIC = topics.referrals(HOSPITAL)
DLQ = topics.dead_letters(TOPIC)
WAIT = 30.0  # every bounded wait in this module


# ------------------------------------------------------------------ helpers


@dataclass(frozen=True)
class Raw:
    """A record exactly as it goes on the wire: anything a hospital might send."""

    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


def new_referral_id() -> str:
    return f"ref-{uuid.uuid4()}"


def headers_for(referral_id: str, ce_type: str = hv1.SUBMITTED) -> list[tuple[str, bytes]]:
    envelope = Envelope.new(source=f"hospital/{HOSPITAL}", type=ce_type, subject=referral_id)
    return envelope.to_headers()


def without(headers: Sequence[tuple[str, bytes]], *names: str) -> list[tuple[str, bytes]]:
    return [(n, v) for n, v in headers if n not in names]


def partition_of(key: bytes, partitions: int = topics.HOSPITAL_PARTITIONS) -> int:
    """Where Kafka's default partitioner (the Java client's murmur2) puts a key."""
    index: int = murmur2(key) & 0x7FFFFFFF
    return index % partitions


async def send_raw(
    bootstrap: str, records: Sequence[Raw], *, topic: str = TOPIC, partition: int | None = None
) -> None:
    # Room for the oversized record test: the client would refuse it before the broker.
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=4_000_000)
    await producer.start()
    try:
        futures = [
            await producer.send(
                topic, value=r.value, key=r.key, headers=r.headers, partition=partition
            )
            for r in records
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


@dataclass(frozen=True)
class DeadLetter:
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]
    raw_headers: list[tuple[str, bytes]]


class DeadLetterReader:
    """The hospital's dead-letter topic from the beginning, assigned partitions, no group."""

    def __init__(self, bootstrap: str) -> None:
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self.seen: list[DeadLetter] = []

    async def __aenter__(self) -> DeadLetterReader:
        consumer = self._consumer
        await consumer.start()
        partitions = consumer.partitions_for_topic(DLQ)
        for _ in range(50):
            if partitions:
                break
            await asyncio.sleep(0.1)
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(DLQ)
        assert partitions, f"{DLQ} does not exist"
        assigned = [TopicPartition(DLQ, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._consumer.stop()

    async def poll(self, timeout_ms: int = 200) -> list[DeadLetter]:
        batches = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=500)
        fresh = [
            DeadLetter(
                key=record.key,
                value=record.value or b"",
                headers=dict(record.headers),
                raw_headers=list(record.headers),
            )
            for records in batches.values()
            for record in records
        ]
        self.seen.extend(fresh)
        return fresh


async def wait_for_dead_letter(
    bootstrap: str, match: Callable[[DeadLetter], bool], *, timeout: float = WAIT
) -> DeadLetter:
    async with DeadLetterReader(bootstrap) as letters:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for letter in await letters.poll():
                if match(letter):
                    return letter
    raise TimeoutError(f"no matching dead letter on {DLQ} within {timeout:.0f}s")


async def first_answer(
    bootstrap: str, reader: UpdatesReader, referral_id: str, *, timeout: float = WAIT
) -> list[Update] | DeadLetter:
    """Whichever comes first for a keyed record: an update, or its dead letter."""
    async with DeadLetterReader(bootstrap) as letters:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            await reader.poll(timeout_ms=100)
            if reader.by_referral.get(referral_id):
                return reader.by_referral[referral_id]
            for letter in await letters.poll(timeout_ms=100):
                if letter.key == referral_id.encode():
                    return letter
    raise TimeoutError(f"neither an update nor a dead letter for {referral_id}")


def has_status(referral_id: str, status: str) -> Callable[[dict[str, list[Update]]], bool]:
    return lambda seen: any(u.data["status"] == status for u in seen.get(referral_id, []))


def has_business_status(
    referral_id: str, business_status: str
) -> Callable[[dict[str, list[Update]]], bool]:
    return lambda seen: any(
        u.data["business_status"] == business_status for u in seen.get(referral_id, [])
    )


def rejected(updates: list[Update]) -> Update:
    found = [u for u in updates if u.data["status"] == "rejected"]
    assert len(found) == 1, [u.data for u in updates]
    return found[0]


def error_fields(update: Update) -> list[str]:
    return [e["field"] for e in update.data["details"]["errors"]]


def mentions(update: Update, path: str) -> bool:
    """The path names an error's field, or the error's message names it (model-level rules)."""
    return any(
        e["field"] == path or e["field"].startswith(path + ".") or path in e["message"]
        for e in update.data["details"]["errors"]
    )


def assert_gap_free(updates: list[Update]) -> None:
    """One case, and a legal, gap-free feed of the contract."""
    assert_feed_legal(updates)
    assert len({u.data["case_id"] for u in updates}) == 1


def distinctive(hospital: FakeHospital, **kwargs: Any) -> tuple[dict[str, Any], list[str]]:
    """A valid submission carrying personal values that occur nowhere else, and those values."""
    tag = uuid.uuid4().hex[:6]
    digits = f"{int(tag, 16) % 10_000:04d}"
    data = hospital.submission(**kwargs)
    patient = data["patient"]
    patient["name"] = f"유출검사{tag}"
    patient["phone"] = f"010-9{digits[:3]}-7{digits}"
    patient["address"]["street"] = f"비밀대로 {digits}번길 {tag}"
    data["social_worker"]["name"] = f"복지사{tag}"
    data["social_worker"]["phone"] = f"02-8{digits}-6{digits}"
    data["social_worker"]["email"] = f"sw-{tag}@example.org"
    data["care_precautions"] = f"야간 배회 주의 {tag}, 저염식"
    values = [
        patient["name"],
        patient["phone"],
        patient["address"]["street"],
        data["social_worker"]["name"],
        data["social_worker"]["phone"],
        data["social_worker"]["email"],
        data["care_precautions"],
        patient["birth_date"],
    ]
    return data, values


def assert_no_values_in(update: Update, values: Sequence[str]) -> None:
    for text in (json.dumps(update.data, ensure_ascii=False), json.dumps(update.data)):
        for value in values:
            assert value not in text, f"{value!r} echoed in {update.data}"
            assert json.dumps(value)[1:-1] not in text, f"{value!r} echoed in {update.data}"


def submitted_raw(hospital: FakeHospital, data: dict[str, Any]) -> Raw:
    record = hospital.submitted(data)
    return Raw(record.key, record.value, record.headers)


# ------------------------------------------------------------------ records without a valid envelope


async def test_not_json_with_a_key_is_rejected_as_invalid(system_info: SystemInfo) -> None:
    referral_id = new_referral_id()
    bad = Raw(referral_id.encode(), b"\x00\xff this is <not> json {", headers_for(referral_id))

    async with UpdatesReader(system_info.kafka_bootstrap, topics.updates(HOSPITAL)) as reader:
        await send_raw(system_info.kafka_bootstrap, [bad])
        seen = await reader.wait_for(has_status(referral_id, "rejected"), timeout=WAIT)

    updates = seen[referral_id]
    assert_gap_free(updates)
    update = rejected(updates)
    assert update.data["sequence"] == 1
    assert update.data["reason_code"] == "invalid-referral"
    assert update.data["business_status"] == "invalid-referral"
    assert error_fields(update) == ["data"]
    assert update.key == referral_id


async def test_not_json_without_a_key_goes_to_the_dead_letters(system_info: SystemInfo) -> None:
    original = f"garbage-{uuid.uuid4()} ⟨not json⟩".encode()
    headers = headers_for("unknown")
    await send_raw(system_info.kafka_bootstrap, [Raw(None, original, headers)])

    letter = await wait_for_dead_letter(system_info.kafka_bootstrap, lambda d: d.value == original)

    assert letter.value == original
    assert letter.key is None
    assert letter.headers[ERROR_HEADER]
    assert b"key" in letter.headers[ERROR_HEADER]
    assert letter.headers[SOURCE_TOPIC_HEADER] == TOPIC.encode()
    assert int(letter.headers[SOURCE_PARTITION_HEADER]) in range(topics.HOSPITAL_PARTITIONS)
    assert int(letter.headers[SOURCE_OFFSET_HEADER]) >= 0
    # The original headers travel unchanged, before the carelink_dlq_* ones.
    assert letter.raw_headers[: len(headers)] == headers


async def test_no_key_and_no_headers_goes_to_the_dead_letters(system_info: SystemInfo) -> None:
    original = f'{{"referral_id": "{uuid.uuid4()}"'.encode()  # truncated JSON
    await send_raw(system_info.kafka_bootstrap, [Raw(None, original, [])])

    letter = await wait_for_dead_letter(system_info.kafka_bootstrap, lambda d: d.value == original)

    assert letter.value == original
    assert letter.headers[ERROR_HEADER]
    assert not [name for name, _ in letter.raw_headers if not name.startswith("carelink_dlq_")]


@pytest.mark.parametrize("missing", ["ce_type", "ce_id"])
async def test_missing_cloudevents_header_with_a_key_is_rejected(
    system_info: SystemInfo, missing: str
) -> None:
    hospital = FakeHospital(HOSPITAL)
    data = hospital.submission()
    referral_id = data["referral_id"]
    good = hospital.submitted(data)
    bad = Raw(good.key, good.value, without(good.headers, missing))

    async with UpdatesReader(system_info.kafka_bootstrap, topics.updates(HOSPITAL)) as reader:
        await send_raw(system_info.kafka_bootstrap, [bad])
        seen = await reader.wait_for(has_status(referral_id, "rejected"), timeout=WAIT)

    update = rejected(seen[referral_id])
    assert_gap_free(seen[referral_id])
    assert update.data["reason_code"] == "invalid-referral"
    assert error_fields(update) == ["headers"]
    assert any(missing in e["message"] for e in update.data["details"]["errors"])


async def test_unknown_ce_type_is_rejected(system_info: SystemInfo) -> None:
    hospital = FakeHospital(HOSPITAL)
    data = hospital.submission()
    referral_id = data["referral_id"]
    record = hospital.record("carelink.referral.submitted.v9", data)

    async with UpdatesReader(system_info.kafka_bootstrap, topics.updates(HOSPITAL)) as reader:
        await publish(system_info.kafka_bootstrap, [record])
        seen = await reader.wait_for(has_status(referral_id, "rejected"), timeout=WAIT)

    update = rejected(seen[referral_id])
    assert update.data["reason_code"] == "invalid-referral"
    assert error_fields(update) == ["ce_type"]


# ------------------------------------------------------------------ contract failures


def _household_zero(data: dict[str, Any]) -> None:
    data["patient"]["household_size"] = 0


def _household_eleven(data: dict[str, Any]) -> None:
    data["patient"]["household_size"] = 11


def _negative_income(data: dict[str, Any]) -> None:
    data["patient"]["monthly_household_income_krw"] = -7_654_321


def _no_patient_name(data: dict[str, Any]) -> None:
    del data["patient"]["name"]


def _discharge_before_admission(data: dict[str, Any]) -> None:
    data["admission_date"] = "2031-07-19"
    data["expected_discharge_date"] = "2031-07-18"


def _no_services(data: dict[str, Any]) -> None:
    data["requested_services"] = []


CONTRACT_FAILURES = [
    pytest.param(_household_zero, "patient.household_size", [], id="household-size-0"),
    pytest.param(_household_eleven, "patient.household_size", [], id="household-size-11"),
    pytest.param(
        _negative_income,
        "patient.monthly_household_income_krw",
        ["7654321", "7,654,321"],
        id="negative-income",
    ),
    pytest.param(_no_patient_name, "patient.name", [], id="missing-patient-name"),
    pytest.param(
        _discharge_before_admission,
        "expected_discharge_date",
        ["2031-07-19", "2031-07-18"],
        id="discharge-before-admission",
    ),
    pytest.param(_no_services, "requested_services", [], id="empty-requested-services"),
]


@pytest.mark.parametrize(("break_it", "field", "bad_values"), CONTRACT_FAILURES)
async def test_contract_failure_is_rejected_field_by_field_without_echo(
    system_info: SystemInfo,
    break_it: Callable[[dict[str, Any]], None],
    field: str,
    bad_values: list[str],
) -> None:
    hospital = FakeHospital(HOSPITAL)
    data, personal = distinctive(hospital)
    break_it(data)
    referral_id = data["referral_id"]

    async with UpdatesReader(system_info.kafka_bootstrap, topics.updates(HOSPITAL)) as reader:
        await publish(system_info.kafka_bootstrap, [hospital.submitted(data)])
        seen = await reader.wait_for(has_status(referral_id, "rejected"), timeout=WAIT)

    updates = seen[referral_id]
    assert_gap_free(updates)
    assert [u.data["status"] for u in updates] == ["rejected"]  # never "received"
    update = updates[0]
    assert update.data["reason_code"] == "invalid-referral"
    assert update.data["reason"]
    errors = update.data["details"]["errors"]
    assert errors, update.data
    assert mentions(update, field), errors
    # Field, message and type only: never the submitted value.
    assert all(set(e) == {"field", "message", "type"} for e in errors)
    assert_no_values_in(update, [*personal, *bad_values])


async def test_other_hospitals_id_is_rejected_and_never_reaches_that_hospital(
    system_info: SystemInfo,
) -> None:
    hospital = FakeHospital(HOSPITAL)
    data = hospital.submission(hospital_id=OTHER_HOSPITAL)
    referral_id = data["referral_id"]

    async with (
        UpdatesReader(system_info.kafka_bootstrap, topics.updates(HOSPITAL)) as ours,
        UpdatesReader(system_info.kafka_bootstrap, topics.updates(OTHER_HOSPITAL)) as theirs,
    ):
        await publish(system_info.kafka_bootstrap, [hospital.submitted(data)])
        seen = await ours.wait_for(has_status(referral_id, "rejected"), timeout=WAIT)
        # Whatever outcome wrote in the same transaction is on the broker by now; read
        # the other hospital's topic to its end and a little beyond.
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            await theirs.poll()

    updates = seen[referral_id]
    assert_gap_free(updates)
    update = rejected(updates)
    assert update.data["reason_code"] == "unknown-hospital"
    assert update.data["business_status"] == "unknown-hospital"
    assert "hospital_id" in error_fields(update)
    assert referral_id not in theirs.by_referral
    assert all(referral_id not in u.key for us in theirs.by_referral.values() for u in us)


# ------------------------------------------------------------------ the partition keeps moving


async def test_bad_records_do_not_stall_the_partition(system_info: SystemInfo) -> None:
    hospital = FakeHospital(HOSPITAL)
    good = hospital.submission(age=70)
    good_id = good["referral_id"]
    partition = partition_of(good_id.encode())

    keyed_ids = [new_referral_id() for _ in range(5)]
    wrong_hospital = hospital.submission(referral_id=keyed_ids[3], hospital_id=OTHER_HOSPITAL)
    invalid = hospital.submission(referral_id=keyed_ids[4], household_size=0)
    orphan_value = f"no key, no json {uuid.uuid4()}".encode()
    follow_up_id = new_referral_id()
    follow_up = hospital.discharged(follow_up_id)  # for a referral that was never submitted
    bad = [
        Raw(keyed_ids[0].encode(), b"not json at all", headers_for(keyed_ids[0])),
        Raw(keyed_ids[1].encode(), b"{}", without(headers_for(keyed_ids[1]), "ce_type")),
        Raw(keyed_ids[2].encode(), b"{}", headers_for(keyed_ids[2], "carelink.nonsense.v1")),
        submitted_raw(hospital, wrong_hospital),
        submitted_raw(hospital, invalid),
        Raw(None, orphan_value, headers_for("none")),
        Raw(follow_up.key, follow_up.value, follow_up.headers),
        Raw(b"\xff\xfe not utf-8 key", b"[1, 2", []),
    ]

    async with UpdatesReader(system_info.kafka_bootstrap, topics.updates(HOSPITAL)) as reader:
        # All on the good record's partition, bad ones first: one partition, one order.
        await send_raw(
            system_info.kafka_bootstrap,
            [*bad, submitted_raw(hospital, good)],
            partition=partition,
        )
        seen = await reader.wait_for(has_business_status(good_id, "triaged"), timeout=WAIT)
        # Records before the good one on its partition were all handled by now.
        seen = await reader.wait_for(
            lambda s: all(any(u.data["status"] == "rejected" for u in s[r]) for r in keyed_ids),
            timeout=5,
        )

    assert [u.data["business_status"] for u in seen[good_id]][:2] == ["received", "triaged"]
    assert_gap_free(seen[good_id])
    reasons = [rejected(seen[r]).data["reason_code"] for r in keyed_ids]
    assert reasons == [
        "invalid-referral",
        "invalid-referral",
        "invalid-referral",
        "unknown-hospital",
        "invalid-referral",
    ]
    assert follow_up_id not in seen
    orphan = await wait_for_dead_letter(
        system_info.kafka_bootstrap, lambda d: d.value == orphan_value, timeout=5
    )
    assert int(orphan.headers[SOURCE_PARTITION_HEADER]) == partition
    dead_follow_up = await wait_for_dead_letter(
        system_info.kafka_bootstrap, lambda d: d.key == follow_up_id.encode(), timeout=5
    )
    assert dead_follow_up.value == follow_up.value
    assert dead_follow_up.headers[ERROR_HEADER]


# ------------------------------------------------------------------ the automatic rules


async def _submit_and_wait(
    system_info: SystemInfo,
    hospital: FakeHospital,
    data: dict[str, Any],
    status: str,
) -> list[Update]:
    """Submit and wait for `status` (a status or a business status)."""
    referral_id = data["referral_id"]
    async with UpdatesReader(system_info.kafka_bootstrap, topics.updates(HOSPITAL)) as reader:
        await publish(system_info.kafka_bootstrap, [hospital.submitted(data)])
        seen = await reader.wait_for(
            lambda s: (
                has_status(referral_id, status)(s) or has_business_status(referral_id, status)(s)
            ),
            timeout=WAIT,
        )
    return seen[referral_id]


async def test_age_49_is_received_then_rejected_as_ineligible(system_info: SystemInfo) -> None:
    hospital = FakeHospital(HOSPITAL)
    updates = await _submit_and_wait(system_info, hospital, hospital.submission(age=49), "rejected")

    assert_gap_free(updates)
    assert [(u.data["sequence"], u.data["status"]) for u in updates] == [
        (1, "received"),
        (2, "rejected"),
    ]
    assert updates[1].data["reason_code"] == "ineligible-age"
    assert updates[1].data["business_status"] == "ineligible-age"
    assert updates[1].data["reason"]
    assert updates[1].data["reason_ko"]


async def test_registered_disabled_six_year_old_passes_the_automatic_rules(
    system_info: SystemInfo,
) -> None:
    hospital = FakeHospital(HOSPITAL)
    data = hospital.submission(age=6, registered_disability=True, household_size=3)
    updates = await _submit_and_wait(system_info, hospital, data, "triaged")

    # Revision 2: triaged is a step of `received`; only a coordinator's review accepts.
    assert [(u.data["status"], u.data["business_status"]) for u in updates][:2] == [
        ("received", "received"),
        ("received", "triaged"),
    ]
    assert_gap_free(updates)
    assert updates[1].data["details"]["centre_id"]
    assert updates[1].data["details"]["fee_support"] in {"full", "self-pay"}


async def test_district_outside_seoul_is_rejected(system_info: SystemInfo) -> None:
    hospital = FakeHospital(HOSPITAL)
    updates = await _submit_and_wait(
        system_info, hospital, hospital.submission(district="Suwon-si"), "rejected"
    )

    assert [u.data["status"] for u in updates] == ["received", "rejected"]
    assert updates[1].data["reason_code"] == "outside-service-area"
    assert_gap_free(updates)


async def test_without_consent_is_rejected(system_info: SystemInfo) -> None:
    hospital = FakeHospital(HOSPITAL)
    updates = await _submit_and_wait(
        system_info, hospital, hospital.submission(consent=False), "rejected"
    )

    # Without consent nothing is shared, not even the receipt: rejected is the first update.
    assert [(u.data["status"], u.data["reason_code"]) for u in updates] == [
        ("rejected", "missing-consent")
    ]
    assert updates[0].data["reason_ko"]
    assert_gap_free(updates)


# ------------------------------------------------------------------ duplicates


async def test_identical_resubmission_repeats_the_current_status(
    system_info: SystemInfo,
) -> None:
    hospital = FakeHospital(HOSPITAL)
    data = hospital.submission(age=80)
    referral_id = data["referral_id"]

    async with UpdatesReader(system_info.kafka_bootstrap, topics.updates(HOSPITAL)) as reader:
        await publish(system_info.kafka_bootstrap, [hospital.submitted(data)])
        # Nothing moves a triaged case on until a coordinator reviews it.
        seen = await reader.wait_for(has_business_status(referral_id, "triaged"), timeout=WAIT)
        before = list(seen[referral_id])
        # Same data, new event (new ce_id, as a hospital re-sending would produce).
        await publish(system_info.kafka_bootstrap, [hospital.submitted(data)])
        seen = await reader.wait_for(lambda s: len(s[referral_id]) > len(before), timeout=WAIT)
        await asyncio.sleep(1)
        await reader.poll()

    updates = seen[referral_id]
    assert_gap_free(updates)  # one case_id: no second case
    assert len(updates) == len(before) + 1
    last, repeat = before[-1].data, updates[-1].data
    assert repeat["sequence"] == last["sequence"] + 1
    assert repeat["case_id"] == last["case_id"]
    assert (repeat["status"], repeat["business_status"]) == (
        last["status"],
        last["business_status"],
    )
    assert repeat["details"] == last["details"]
    assert sum(u.data["business_status"] == "received" for u in updates) == 1


async def test_identical_resubmission_of_a_rejected_referral_is_refused_repeating_rejected(
    system_info: SystemInfo,
) -> None:
    """A finished referral id takes no submission, not even the same one again: its
    terminal status is repeated, as `submission-refused`."""
    hospital = FakeHospital(HOSPITAL)
    data = hospital.submission(age=30)
    referral_id = data["referral_id"]

    async with UpdatesReader(system_info.kafka_bootstrap, topics.updates(HOSPITAL)) as reader:
        await publish(system_info.kafka_bootstrap, [hospital.submitted(data)])
        await reader.wait_for(has_status(referral_id, "rejected"), timeout=WAIT)
        await publish(system_info.kafka_bootstrap, [hospital.submitted(data)])
        seen = await reader.wait_for(lambda s: len(s[referral_id]) >= 3, timeout=WAIT)

    updates = seen[referral_id]
    assert_gap_free(updates)
    assert [
        (u.data["status"], u.data["business_status"], u.data["reason_code"]) for u in updates
    ] == [
        ("received", "received", None),
        ("rejected", "ineligible-age", "ineligible-age"),
        ("rejected", "submission-refused", "conflicting-duplicate"),
    ]
    assert updates[-1].data["reason_ko"]


async def test_a_conflicting_resubmission_is_refused_and_the_referral_goes_on(
    system_info: SystemInfo, staff: Staff
) -> None:
    """The same referral_id with other content changes nothing: the current status is
    repeated as `submission-refused` (before acceptance and in progress), and the review
    and the visit follow as if nothing had been sent."""
    hospital = FakeHospital(HOSPITAL)
    data = hospital.submission(age=75)
    referral_id = data["referral_id"]
    different = {**data, "care_precautions": "다른 내용", "priority": "urgent"}

    def refusals(n: int) -> Callable[[dict[str, list[Update]]], bool]:
        return lambda s: (
            sum(u.data["business_status"] == "submission-refused" for u in s[referral_id]) >= n
        )

    async with UpdatesReader(system_info.kafka_bootstrap, topics.updates(HOSPITAL)) as reader:
        await publish(system_info.kafka_bootstrap, [hospital.submitted(data)])
        seen = await reader.wait_for(has_business_status(referral_id, "triaged"), timeout=WAIT)
        case_id = seen[referral_id][0].data["case_id"]
        await publish(system_info.kafka_bootstrap, [hospital.submitted(different)])
        await reader.wait_for(refusals(1), timeout=WAIT)
        await staff.review(case_id)
        await reader.wait_for(
            has_business_status(referral_id, "pre-discharge-visit-scheduled"), timeout=WAIT
        )
        await publish(system_info.kafka_bootstrap, [hospital.submitted(different)])
        seen = await reader.wait_for(refusals(2), timeout=WAIT)

    updates = seen[referral_id]
    assert_gap_free(updates)  # the same case: no second case was opened
    trail = [(u.data["status"], u.data["business_status"]) for u in updates]
    assert trail == [
        ("received", "received"),
        ("received", "triaged"),
        ("received", "submission-refused"),
        ("accepted", "reviewed"),
        ("in-progress", "pre-discharge-visit-scheduled"),
        ("in-progress", "submission-refused"),
    ]
    for refused in (updates[2], updates[5]):
        assert refused.data["reason_code"] == "conflicting-duplicate"
        assert refused.data["reason_ko"]
        assert refused.data["case_id"] == case_id
    # The triage as first sent: the refused content changed nothing (still routine).
    assert updates[1].data["details"]["review_deadline"]


async def test_any_submission_under_a_cancelled_referral_is_refused_repeating_cancelled(
    system_info: SystemInfo,
) -> None:
    hospital = FakeHospital(HOSPITAL)
    data = hospital.submission(age=68)
    referral_id = data["referral_id"]
    corrected = {**data, "care_precautions": "새 의뢰 내용"}

    async with UpdatesReader(system_info.kafka_bootstrap, topics.updates(HOSPITAL)) as reader:
        await publish(system_info.kafka_bootstrap, [hospital.submitted(data)])
        await reader.wait_for(has_business_status(referral_id, "triaged"), timeout=WAIT)
        await publish(system_info.kafka_bootstrap, [hospital.cancelled(referral_id, "deceased")])
        await reader.wait_for(has_status(referral_id, "cancelled"), timeout=WAIT)
        await publish(
            system_info.kafka_bootstrap,
            [hospital.submitted(data), hospital.submitted(corrected)],
        )
        seen = await reader.wait_for(lambda s: len(s[referral_id]) >= 5, timeout=WAIT)

    updates = seen[referral_id]
    assert_gap_free(updates)
    assert [(u.data["status"], u.data["business_status"]) for u in updates] == [
        ("received", "received"),
        ("received", "triaged"),
        ("cancelled", "deceased"),
        ("cancelled", "submission-refused"),
        ("cancelled", "submission-refused"),
    ]
    assert updates[2].data["reason_ko"]


async def test_a_corrected_submission_after_an_invalid_referral_is_refused(
    system_info: SystemInfo,
) -> None:
    """Revision 2: a referral rejected as invalid is finished; the corrected referral
    needs a new referral_id. The feed never leaves `rejected`."""
    hospital = FakeHospital(HOSPITAL)
    data = hospital.submission()
    referral_id = data["referral_id"]
    broken = {**data, "requested_services": []}

    async with UpdatesReader(system_info.kafka_bootstrap, topics.updates(HOSPITAL)) as reader:
        await publish(system_info.kafka_bootstrap, [hospital.submitted(broken)])
        await reader.wait_for(has_status(referral_id, "rejected"), timeout=WAIT)
        await publish(system_info.kafka_bootstrap, [hospital.submitted(data)])
        seen = await reader.wait_for(lambda s: len(s[referral_id]) >= 2, timeout=WAIT)
        await asyncio.sleep(1)
        await reader.poll()

    updates = seen[referral_id]
    assert_gap_free(updates)
    assert [(u.data["status"], u.data["business_status"]) for u in updates] == [
        ("rejected", "invalid-referral"),
        ("rejected", "submission-refused"),
    ]
    assert updates[1].data["reason_code"] == "conflicting-duplicate"


async def test_a_broken_record_under_an_open_referral_is_refused_and_changes_nothing(
    system_info: SystemInfo,
) -> None:
    hospital = FakeHospital(HOSPITAL)
    data = hospital.submission()
    referral_id = data["referral_id"]

    async with UpdatesReader(system_info.kafka_bootstrap, topics.updates(HOSPITAL)) as reader:
        await publish(system_info.kafka_bootstrap, [hospital.submitted(data)])
        await reader.wait_for(has_business_status(referral_id, "triaged"), timeout=WAIT)
        broken = Raw(referral_id.encode(), b"not json", headers_for(referral_id))
        await send_raw(system_info.kafka_bootstrap, [broken])
        seen = await reader.wait_for(
            has_business_status(referral_id, "submission-refused"), timeout=WAIT
        )

    updates = seen[referral_id]
    assert_gap_free(updates)
    refused = updates[-1].data
    assert (refused["status"], refused["reason_code"]) == ("received", "invalid-referral")
    assert [e["field"] for e in refused["details"]["errors"]] == ["data"]
    assert "rejected" not in [u.data["status"] for u in updates]


def _nul_in_free_text(data: dict[str, Any]) -> bytes:
    data["care_precautions"] = "낙상 위험\u0000저염식"
    return json.dumps(data, ensure_ascii=False).encode()


def _nan_in_extra_field(data: dict[str, Any]) -> bytes:
    # extra fields are tolerated by the contract; NaN is not JSON (RFC 8259) but json.loads takes it
    return json.dumps({**data, "x_risk_score": float("nan")}).encode()


@pytest.mark.parametrize(
    ("encode", "field"),
    [
        pytest.param(_nul_in_free_text, "care_precautions", id="nul-in-care-precautions"),
        pytest.param(_nan_in_extra_field, "x_risk_score", id="nan-in-extra-field"),
    ],
)
async def test_values_postgres_cannot_store_are_rejected_not_dead_lettered(
    system_info: SystemInfo, encode: Callable[[dict[str, Any]], bytes], field: str
) -> None:
    hospital = FakeHospital(HOSPITAL)
    data = hospital.submission()
    referral_id = data["referral_id"]
    record = hospital.submitted(data)
    bad = Raw(record.key, encode(data), record.headers)

    async with UpdatesReader(system_info.kafka_bootstrap, topics.updates(HOSPITAL)) as reader:
        await send_raw(system_info.kafka_bootstrap, [bad])
        answer = await first_answer(system_info.kafka_bootstrap, reader, referral_id)

    assert not isinstance(answer, DeadLetter), answer.headers.get(ERROR_HEADER)
    update = rejected(answer)
    assert update.data["reason_code"] == "invalid-referral"
    assert mentions(update, field) or error_fields(update) == ["data"]


async def test_oversized_record_with_a_key_is_rejected_not_dead_lettered(
    system_info: SystemInfo,
) -> None:
    hospital = FakeHospital(HOSPITAL)
    data = hospital.submission(care_precautions="낙상 " * 400_000)  # about 2.8 MB
    referral_id = data["referral_id"]
    record = hospital.submitted(data)
    assert len(record.value) > 1_000_000

    async with UpdatesReader(system_info.kafka_bootstrap, topics.updates(HOSPITAL)) as reader:
        await send_raw(system_info.kafka_bootstrap, [Raw(record.key, record.value, record.headers)])
        answer = await first_answer(system_info.kafka_bootstrap, reader, referral_id)

    assert not isinstance(answer, DeadLetter), answer.headers.get(ERROR_HEADER)
    update = rejected(answer)
    assert update.data["reason_code"] == "invalid-referral"
    assert error_fields(update) == ["data"]
    assert "larger than" in update.data["details"]["errors"][0]["message"]
