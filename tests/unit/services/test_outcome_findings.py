"""What a hospital hears of a visit's findings: the vocabulary's codes, each with its
Korean and English labels; anything else (an older event's free strings, a code the
vocabulary does not list) not at all, and outcome logs how many, never which."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from structlog.testing import capture_logs

from contracts.cases import decode_case_event
from contracts.hospital_v1 import Status
from contracts.scheduling import VisitDone
from services.lib.policy import load_findings
from services.outcome import usecases
from services.outcome.domain import Update, translate, visit_findings

VOCABULARY = load_findings()
CANARY = "카나리아 canary-note 9d1e"
VISIT: dict[str, Any] = {
    "case_id": "case-0001",
    "hospital_id": "police-hospital",
    "referral_id": "REF-1",
    "occurred_at": datetime(2025, 3, 1, 1, 0, tzinfo=UTC).isoformat(),
    "kind": "post-discharge",
    "precautions_acknowledged": True,
}


def _read(findings: list[Any]) -> VisitDone:
    event = decode_case_event(
        VisitDone.ce_type, json.dumps({**VISIT, "findings": findings}).encode()
    )
    assert isinstance(event, VisitDone)
    return event


def _details(event: VisitDone) -> dict[str, Any]:
    update = translate(event, VOCABULARY)
    assert isinstance(update, Update)
    assert (update.status, update.business_status) == (
        Status.IN_PROGRESS,
        "post-discharge-visit-done",
    )
    return update.details


def test_codes_reach_the_hospital_with_both_labels_in_the_order_recorded() -> None:
    details = _details(_read(["medication-help", "fall-risk"]))
    fall = VOCABULARY.get("fall-risk")
    meds = VOCABULARY.get("medication-help")
    assert fall is not None
    assert meds is not None
    assert details["findings"] == [
        {"code": "medication-help", "label": {"ko": meds.label.ko, "en": meds.label.en}},
        {"code": "fall-risk", "label": {"ko": fall.label.ko, "en": fall.label.en}},
    ]
    assert details["care_precautions_acknowledged"] is True


def test_an_old_events_free_strings_and_unknown_codes_do_not_reach_the_hospital() -> None:
    event = _read(["fall-risk", CANARY, "retired-code", "fall-risk"])
    details = _details(event)
    assert [f["code"] for f in details["findings"]] == ["fall-risk"]
    assert CANARY not in json.dumps(details, ensure_ascii=False)
    assert "retired-code" not in json.dumps(details)


def test_no_findings_is_an_empty_list() -> None:
    assert _details(_read([]))["findings"] == []


def test_without_a_vocabulary_the_codes_alone() -> None:
    assert visit_findings(["fall-risk", "fall-risk", "x-y"], None) == [
        {"code": "fall-risk"},
        {"code": "x-y"},
    ]


def test_dropped_findings_are_logged_by_count_never_by_value() -> None:
    event = _read(["fall-risk", CANARY, "retired-code"])
    with capture_logs() as logs:
        usecases._report_dropped_findings(event, VOCABULARY)
    assert len(logs) == 1
    line = logs[0]
    assert line["log_level"] == "warning"
    assert (line["not_codes"], line["unknown_codes"]) == (1, 1)
    assert line["case_id"] == "case-0001"
    assert CANARY not in repr(line)
    assert "retired-code" not in repr(line)


def test_nothing_is_logged_when_every_finding_is_a_code() -> None:
    with capture_logs() as logs:
        usecases._report_dropped_findings(_read(["fall-risk"]), VOCABULARY)
    assert logs == []
