"""Error classification, safe error text, record identity, retry delays, header storage."""

from __future__ import annotations

import errno
import json
import socket
from typing import Any

import asyncpg
import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    NotLeaderForPartitionError,
)
from pydantic import BaseModel, EmailStr, Field, ValidationError

from contracts import hospital_v1 as hv1
from services.lib.runtime.errors import PermanentError, describe, is_transient
from services.lib.runtime.outbox import decode_headers, encode_headers
from services.lib.runtime.pipeline import Record, RetryPolicy
from services.tools.simulators.referrals import FakeHospital

# ---------------------------------------------------------------- describe


SECRET_NAME = "비밀환자홍길순"
SECRET_PHONE = "010-7319-4682"
SECRET_STREET = "유출금지로 987번길 65"


def _invalid_submission() -> dict[str, Any]:
    hospital = FakeHospital("police-hospital", seed=7)
    data = hospital.submission()
    data["patient"] = {
        **data["patient"],
        "name": SECRET_NAME * 40,  # too long: ShortText is 1..200
        "phone": SECRET_PHONE,
        "sex": "SECRET-SEX",
        "household_size": 987654,
        "monthly_household_income_krw": -7654321,
        "birth_date": "SECRET-DATE",
        "address": {"district": "Songpa-gu", "dong": "", "street": SECRET_STREET},
    }
    data["social_worker"] = {"name": "사회복지사비밀", "phone": "02-555-0199", "email": "nope"}
    data["requested_services"] = ["secret_service_code"]
    data["consent"] = {"given": "SECRET-MAYBE", "obtained_at": "later", "method": "telepathy"}
    return data


def _validation_error(model: type[BaseModel], data: object) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return info.value


def test_describe_names_fields_and_never_the_input_values() -> None:
    data = _invalid_submission()
    exc = _validation_error(hv1.ReferralSubmitted, data)
    text = describe(exc)

    assert text.startswith("ReferralSubmitted invalid: ")
    for field in (
        "patient.name",
        "patient.sex",
        "patient.household_size",
        "patient.monthly_household_income_krw",
        "patient.birth_date",
        "patient.address.dong",
        "social_worker.email",
        "requested_services.0",
        "consent.given",
        "consent.method",
    ):
        assert field in text, field
    for value in (
        SECRET_NAME,
        json.dumps(SECRET_NAME)[1:-1],
        SECRET_PHONE,
        SECRET_STREET,
        "SECRET",
        "987654",
        "7654321",
        "telepathy",
        "secret_service_code",
        "사회복지사비밀",
    ):
        assert value not in text, value
    # The exception's own str() does quote the input: describe must not fall back to it.
    assert "SECRET" in str(exc)


def test_describe_of_a_root_level_failure() -> None:
    text = describe(_validation_error(hv1.ReferralSubmitted, ["비밀목록", 12345]))
    assert "<root>" in text
    assert "비밀목록" not in text
    assert "12345" not in text


def test_describe_of_a_model_validator_failure_keeps_dates_out() -> None:
    data = FakeHospital("police-hospital", seed=3).submission()
    data["admission_date"] = "2031-07-19"
    data["expected_discharge_date"] = "2031-07-18"
    text = describe(_validation_error(hv1.ReferralSubmitted, data))
    assert "expected_discharge_date" in text
    assert "2031-07-19" not in text
    assert "2031-07-18" not in text


class _Contact(BaseModel):
    email: EmailStr


def test_describe_of_an_invalid_email_does_not_quote_the_address() -> None:
    label = "홍길순x\u2024"  # a name in the domain, made invalid IDNA by one character
    address = "sw@xn--" + label.encode("punycode").decode() + ".com"
    text = describe(_validation_error(_Contact, {"email": address}))
    assert "email" in text
    assert "홍길순" not in text


def test_describe_of_other_errors() -> None:
    assert describe(PermanentError("record has no usable key")) == "record has no usable key"
    # Other exceptions may quote data in their text: only their type is given.
    assert describe(KeyError("홍길순")) == "KeyError"
    assert describe(ValueError("patient 홍길순 born 1951-03-02")) == "ValueError"
    assert describe(asyncpg.CannotConnectNowError("the database system is starting up")) == (
        "CannotConnectNowError"
    )


class _Limits(BaseModel):
    size: int = Field(ge=1, le=10)


def test_describe_without_any_input_in_constraint_messages() -> None:
    text = describe(_validation_error(_Limits, {"size": 31337}))
    assert text == "_Limits invalid: size: Input should be less than or equal to 10"


# ---------------------------------------------------------------- is_transient


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionResetError(),
        ConnectionRefusedError(),
        TimeoutError(),
        asyncpg.CannotConnectNowError("starting up"),
        asyncpg.TooManyConnectionsError("too many"),
        asyncpg.SerializationError("could not serialize"),
        asyncpg.DeadlockDetectedError("deadlock"),
        asyncpg.InterfaceError("connection is closed"),
        KafkaError(),
        KafkaConnectionError(),
        KafkaTimeoutError(),
        NotLeaderForPartitionError(),
    ],
    ids=lambda e: type(e).__name__,
)
def test_transient_faults(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
        OSError(errno.ENETUNREACH, "Network is unreachable"),
        OSError(errno.EHOSTUNREACH, "No route to host"),
    ],
    ids=["gaierror", "ENETUNREACH", "EHOSTUNREACH"],
)
def test_network_oserrors_are_transient(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("bad"),
        json.JSONDecodeError("x", "doc", 0),
        UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
        KeyError("k"),
        TypeError("t"),
        PermanentError("p"),
        asyncpg.UniqueViolationError("duplicate key"),
        asyncpg.CheckViolationError("check"),
        FileNotFoundError("a handler bug, not a passing fault"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_permanent_faults(exc: BaseException) -> None:
    assert not is_transient(exc)


def test_validation_error_is_not_transient() -> None:
    assert not is_transient(_validation_error(_Limits, {"size": 0}))


# ---------------------------------------------------------------- Record


def _record(headers: tuple[tuple[str, bytes], ...], key: bytes | None = b"ref-1") -> Record:
    return Record(
        topic="hospital.police-hospital.referrals",
        partition=2,
        offset=41,
        key=key,
        value=b"{}",
        headers=headers,
    )


def test_event_id_is_the_ce_id_header() -> None:
    record = _record((("ce_type", b"x"), ("ce_id", b"6f1c-event"), ("ce_source", b"police/emr")))
    assert record.event_id == "6f1c-event"


def test_event_id_header_name_is_case_insensitive() -> None:
    record = _record((("CE_ID", b"upper-id"), ("CE_SOURCE", b"police/emr")))
    assert record.identity == ("police/emr", "upper-id")


@pytest.mark.parametrize(
    "headers",
    [
        (),
        (("ce_type", b"carelink.referral.submitted.v1"),),
        (("ce_id", b""),),
        (("ce_id", b"\xff\xfe"),),  # not UTF-8: unusable as an id
    ],
    ids=["no-headers", "no-ce_id", "empty-ce_id", "non-utf8-ce_id"],
)
def test_event_id_falls_back_to_the_record_position(headers: tuple[tuple[str, bytes], ...]) -> None:
    record = _record(headers)
    assert record.event_id == "hospital.police-hospital.referrals:2:41"
    # Stable: the same record redelivered gets the same id.
    assert _record(headers).event_id == record.event_id


def test_key_text() -> None:
    assert _record((), key=b"ref-\xc3\xa9").key_text == "ref-é"
    assert _record((), key=None).key_text is None
    assert _record((), key=b"\xff").key_text is None


def test_is_replay() -> None:
    assert _record((("carelink_replay", b"1"),)).is_replay
    assert not _record((("ce_id", b"a"),)).is_replay


# ---------------------------------------------------------------- RetryPolicy


def test_retry_delay_doubles_from_the_base() -> None:
    policy = RetryPolicy(attempts=8, base_delay_s=0.2, max_delay_s=100.0)
    assert [policy.delay(n) for n in range(1, 6)] == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.2])


def test_retry_delay_is_capped() -> None:
    policy = RetryPolicy(attempts=20, base_delay_s=0.2, max_delay_s=5.0)
    delays = [policy.delay(n) for n in range(1, 21)]
    assert max(delays) == 5.0
    assert delays[5:] == [5.0] * 15
    assert delays == sorted(delays)
    assert all(isinstance(d, float) for d in delays)


def test_retry_defaults() -> None:
    policy = RetryPolicy()
    assert policy.delay(1) == pytest.approx(0.2)
    assert policy.delay(100) == policy.max_delay_s


# ---------------------------------------------------------------- outbox headers


def test_headers_round_trip_arbitrary_bytes() -> None:
    headers = [
        ("ce_id", b"5d2b-id"),
        ("ce_subject", "홍길순의 의뢰".encode()),
        ("binary", bytes(range(256))),
        ("latin1", "café".encode("latin-1")),
        ("empty", b""),
        ("duplicate", b"1"),
        ("duplicate", b"2"),
        ("nul", b"\x00\x00"),
    ]
    stored = encode_headers(headers)
    # What goes into the JSONB column must be plain JSON text.
    assert json.loads(json.dumps(stored)) == stored
    assert all(isinstance(value, str) for _, value in stored)
    assert decode_headers(stored) == headers


def test_headers_round_trip_empty_list() -> None:
    assert decode_headers(encode_headers([])) == []


def test_a_database_closed_for_connections_is_transient_other_55000_errors_are_not() -> None:
    closed = asyncpg.ObjectNotInPrerequisiteStateError(
        'database "carelink_intake" is not currently accepting connections'
    )
    other = asyncpg.ObjectNotInPrerequisiteStateError("currval of sequence is not yet defined")
    assert is_transient(closed)
    assert not is_transient(other)
