"""Correcting a case's fee support: only before its care plan (issue 10)."""

from __future__ import annotations

from services.referral.domain import fee_correction_problem


def test_before_the_care_plan_a_different_fee_support_may_be_set() -> None:
    assert (
        fee_correction_problem(closed=False, planned=False, current="self-pay", corrected="full")
        is None
    )


def test_after_the_care_plan_the_correction_is_refused_naming_the_plan() -> None:
    problem = fee_correction_problem(
        closed=False, planned=True, current="self-pay", corrected="full"
    )
    assert problem is not None
    code, message = problem
    assert code == "care-plan-set"
    assert "before the care plan" in message


def test_a_finished_case_keeps_its_fee_support() -> None:
    problem = fee_correction_problem(
        closed=True, planned=False, current="full", corrected="self-pay"
    )
    assert problem is not None
    assert problem[0] == "case-closed"


def test_the_same_value_is_nothing_to_correct() -> None:
    problem = fee_correction_problem(closed=False, planned=False, current="full", corrected="full")
    assert problem is not None
    assert problem[0] == "invalid-request"
