"""The CloudEvents binary-mode envelope: writing headers and reading them strictly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from contracts.cloudevents import REQUIRED_HEADERS, Envelope, EnvelopeError

KST = timezone(timedelta(hours=9))


def valid_headers() -> list[tuple[str, bytes]]:
    return Envelope.new(
        source="hospital/police-hospital",
        type="carelink.referral.submitted.v1",
        time=datetime(2025, 3, 1, 9, 30, tzinfo=KST),
    ).to_headers()


def with_header(name: str, value: bytes) -> list[tuple[str, bytes]]:
    return [(n, value if n == name else v) for n, v in valid_headers()]


def test_to_headers_from_headers_round_trip() -> None:
    envelope = Envelope(
        id="6a1f0c52-7e0b-4f44-9d7e-4b1f5a9d0c11",
        source="carelink/intake",
        type="carelink.case.received.v1",
        time=datetime(2025, 3, 1, 9, 30, 15, 123456, tzinfo=KST),
        subject="REF-1",
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        extensions={"causationid": "evt-0"},
    )

    assert Envelope.from_headers(envelope.to_headers()) == envelope


def test_round_trip_without_optional_attributes() -> None:
    envelope = Envelope.new(source="carelink/outcome", type="carelink.case.closed.v1")

    decoded = Envelope.from_headers(envelope.to_headers())

    assert decoded == envelope
    assert decoded.subject is None
    assert decoded.traceparent is None
    assert decoded.extensions == {}


def test_new_gives_a_unique_id_and_an_aware_time() -> None:
    first = Envelope.new(source="s", type="t")
    second = Envelope.new(source="s", type="t")

    assert first.id != second.id
    assert first.time.tzinfo is not None


def test_to_headers_writes_the_required_headers_as_utf8() -> None:
    headers = dict(valid_headers())

    assert set(REQUIRED_HEADERS) <= headers.keys()
    assert headers["ce_specversion"] == b"1.0"
    assert headers["content-type"] == b"application/json"
    assert headers["ce_time"] == b"2025-03-01T09:30:00+09:00"


@pytest.mark.parametrize("missing", REQUIRED_HEADERS)
def test_from_headers_fails_for_each_missing_required_header(missing: str) -> None:
    headers = [(n, v) for n, v in valid_headers() if n != missing]

    with pytest.raises(EnvelopeError, match=f"missing CloudEvents headers: {missing}$"):
        Envelope.from_headers(headers)


@pytest.mark.parametrize("missing", REQUIRED_HEADERS)
def test_from_headers_fails_for_each_empty_required_header(missing: str) -> None:
    with pytest.raises(EnvelopeError, match=missing):
        Envelope.from_headers(with_header(missing, b""))


def test_from_headers_fails_without_any_headers() -> None:
    with pytest.raises(EnvelopeError, match="missing CloudEvents headers"):
        Envelope.from_headers(None)


def test_from_headers_fails_for_wrong_specversion() -> None:
    with pytest.raises(EnvelopeError, match=r"ce_specversion must be 1\.0"):
        Envelope.from_headers(with_header("ce_specversion", b"0.3"))


def test_from_headers_fails_for_wrong_content_type() -> None:
    with pytest.raises(EnvelopeError, match="content-type must be application/json"):
        Envelope.from_headers(with_header("content-type", b"application/avro"))


def test_from_headers_accepts_content_type_with_charset() -> None:
    headers = with_header("content-type", b"application/json; charset=utf-8")

    assert Envelope.from_headers(headers).type == "carelink.referral.submitted.v1"


def test_from_headers_fails_for_non_utf8_header_bytes() -> None:
    with pytest.raises(EnvelopeError, match="header ce_source is not UTF-8"):
        Envelope.from_headers(with_header("ce_source", b"\xff\xfehospital"))


@pytest.mark.parametrize("value", [b"yesterday", b"2025-13-01T00:00:00+09:00", b"1740000000"])
def test_from_headers_fails_for_bad_ce_time(value: bytes) -> None:
    with pytest.raises(EnvelopeError, match="ce_time is not an RFC 3339 timestamp"):
        Envelope.from_headers(with_header("ce_time", value))


def test_from_headers_fails_for_naive_ce_time() -> None:
    with pytest.raises(EnvelopeError, match="ce_time must carry a UTC offset"):
        Envelope.from_headers(with_header("ce_time", b"2025-03-01T09:30:00"))


def test_from_headers_reads_z_as_utc() -> None:
    envelope = Envelope.from_headers(with_header("ce_time", b"2025-03-01T00:30:00Z"))

    assert envelope.time == datetime(2025, 3, 1, 0, 30, tzinfo=UTC)


def test_from_headers_matches_header_names_case_insensitively() -> None:
    headers = [(n.upper(), v) for n, v in valid_headers()]

    assert Envelope.from_headers(headers).source == "hospital/police-hospital"
