"""Scheduling records a visit's findings only as codes of the vocabulary: its API body
refuses what is not shaped like a code, its use case what the vocabulary lacks, each
naming the field and never echoing the value. No server: the refusal comes before any
database work."""

from __future__ import annotations

from typing import Any, cast

import asyncpg
import pytest
from pydantic import ValidationError

from services.lib.policy import load_findings
from services.lib.runtime.api_errors import field_problems
from services.lib.tasks.api import STATUS_OF_CODE
from services.scheduling import domain
from services.scheduling.api import VisitBody
from services.scheduling.usecases import Coordinator, InvalidVisit

VOCABULARY = load_findings()
CANARY = "canary-7f3a"  # shaped like a code, in no vocabulary
FREE_TEXT = "김순자 lives alone, stairs"


class _NoPool:
    """A pool that must not be used: the refusal comes first."""

    def acquire(self) -> Any:
        raise AssertionError("the database was touched before the findings were checked")


def _coordinator() -> Coordinator:
    return Coordinator(cast(asyncpg.Pool, _NoPool()), findings=VOCABULARY)


def test_the_vocabulary_codes_pass() -> None:
    assert domain.finding_problems(["fall-risk", "medication-help"], VOCABULARY) == ()
    assert domain.finding_problems([], VOCABULARY) == ()


def test_an_unknown_code_is_named_by_its_position_not_its_value() -> None:
    problems = domain.finding_problems(["fall-risk", CANARY, "home-hazard", "nope"], VOCABULARY)
    assert [p.split(":")[0] for p in problems] == ["findings.1", "findings.3"]
    assert all("fall-risk" in p for p in problems), "the message lists the codes"
    assert not any(CANARY in p or "nope" in p for p in problems)


async def test_the_use_case_refuses_an_unknown_code_before_touching_the_database() -> None:
    with pytest.raises(InvalidVisit) as info:
        await _coordinator().complete_visit(
            7, "coordinator", precautions_acknowledged=True, findings=["fall-risk", CANARY]
        )
    assert info.value.code == "invalid-request"
    assert STATUS_OF_CODE[info.value.code] == 422
    assert str(info.value).startswith("findings.1: ")
    assert CANARY not in str(info.value)


def test_the_body_takes_codes_and_a_note() -> None:
    body = VisitBody.model_validate(
        {
            "reached": True,
            "precautions_acknowledged": True,
            "findings": ["fall-risk", "needs-meal-support"],
            "notes": FREE_TEXT,
        }
    )
    assert body.findings == ["fall-risk", "needs-meal-support"]
    assert body.notes == FREE_TEXT


@pytest.mark.parametrize("bad", [FREE_TEXT, "Fall-Risk", "fall risk", "", "x" * 41, 3])
def test_the_body_refuses_what_is_not_shaped_like_a_code(bad: object) -> None:
    with pytest.raises(ValidationError) as info:
        VisitBody.model_validate(
            {"reached": True, "precautions_acknowledged": True, "findings": ["fall-risk", bad]}
        )
    message = field_problems(info.value.errors())
    assert message.startswith("findings.1: "), message
    assert FREE_TEXT not in message


def test_at_most_twenty_findings() -> None:
    with pytest.raises(ValidationError) as info:
        VisitBody.model_validate(
            {"reached": True, "precautions_acknowledged": True, "findings": ["fall-risk"] * 21}
        )
    assert field_problems(info.value.errors()).startswith("findings: ")


def test_a_failed_contact_takes_no_findings() -> None:
    with pytest.raises(ValidationError):
        VisitBody.model_validate({"reached": False, "findings": ["fall-risk"]})
