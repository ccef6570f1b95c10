"""Record.identity: (ce_source, ce_id), or the record's position when either is missing."""

from __future__ import annotations

import pytest

from services.lib.runtime.pipeline import Record


def _record(*headers: tuple[str, bytes], offset: int = 41) -> Record:
    return Record(
        topic="hospital.police-hospital.referrals",
        partition=2,
        offset=offset,
        key=b"ref-1",
        value=b"{}",
        headers=headers,
    )


def test_identity_is_the_source_and_the_id() -> None:
    record = _record(("ce_id", b"42"), ("ce_source", b"police-hospital/emr"))
    assert record.identity == ("police-hospital/emr", "42")
    assert (record.event_source, record.event_id) == record.identity


def test_the_same_ce_id_from_two_sources_is_two_identities() -> None:
    a = _record(("ce_id", b"42"), ("ce_source", b"police-hospital/emr"))
    b = _record(("ce_id", b"42"), ("ce_source", b"seoul-hospital/emr"))
    assert a.identity != b.identity


def test_a_republished_event_keeps_its_identity() -> None:
    headers = (("ce_id", b"42"), ("ce_source", b"police-hospital/emr"))
    assert _record(*headers, offset=1).identity == _record(*headers, offset=99).identity


@pytest.mark.parametrize(
    "headers",
    [
        (("ce_id", b"42"),),
        (("ce_id", b"42"), ("ce_source", b"")),
        (("ce_id", b"42"), ("ce_source", b"\xff\xfehospital")),  # not UTF-8
        (("ce_source", b"police-hospital/emr"),),
    ],
    ids=["no-source", "empty-source", "non-utf8-source", "no-id"],
)
def test_without_a_usable_source_and_id_the_position_identifies_the_record(
    headers: tuple[tuple[str, bytes], ...],
) -> None:
    # A ce_id is unique only within its source: alone it identifies nothing.
    assert _record(*headers).identity == ("", "hospital.police-hospital.referrals:2:41")
