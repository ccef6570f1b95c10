"""A visit's findings on `care.cases` are codes: an event written before findings were
codes (free strings) still reads, without the strings that are not codes."""

from __future__ import annotations

import json
from typing import Any

from contracts.cases import decode_case_event
from contracts.scheduling import VisitDone, is_finding_code

VISIT: dict[str, Any] = {
    "case_id": "case-0001",
    "hospital_id": "police-hospital",
    "referral_id": "REF-1",
    "occurred_at": "2025-03-01T10:00:00+09:00",
    "kind": "post-discharge",
    "precautions_acknowledged": True,
}
CANARY = "카나리아 김순자 010-1234-5678 stairs at home"


def test_codes_read_and_write_as_they_are() -> None:
    event = VisitDone.model_validate({**VISIT, "findings": ["fall-risk", "medication-help"]})
    assert event.findings == ["fall-risk", "medication-help"]
    assert event.not_codes == 0
    assert json.loads(event.model_dump_json())["findings"] == ["fall-risk", "medication-help"]


def test_an_old_event_with_free_strings_reads_without_them() -> None:
    old = {**VISIT, "findings": ["fall-risk", CANARY, "Lives Alone", 7, None, "x" * 41]}
    event = decode_case_event(VisitDone.ce_type, json.dumps(old).encode())
    assert isinstance(event, VisitDone)
    assert event.findings == ["fall-risk"]
    assert event.not_codes == 5
    assert CANARY not in event.model_dump_json()
    assert CANARY not in repr(event)


def test_an_event_without_findings_reads() -> None:
    event = decode_case_event(VisitDone.ce_type, json.dumps(VISIT).encode())
    assert isinstance(event, VisitDone)
    assert (event.findings, event.not_codes) == ([], 0)


def test_the_shape_of_a_code() -> None:
    assert is_finding_code("fall-risk")
    assert is_finding_code("a1-b2")
    for bad in ("", "Fall-risk", "fall--risk", "-fall", "fall-", "fall risk", "낙상", "1fall", 3):
        assert not is_finding_code(bad), bad
