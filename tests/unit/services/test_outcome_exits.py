"""What a hospital hears of a coordinator's exits (issue 10), through outcome's state
machine: a cancellation by the centre, a reopened unreachable case, a fee-support
correction as a step inside the current status, its reason kept."""

from __future__ import annotations

from contracts.intake import CaseCancelled
from contracts.reasons import REASONS
from contracts.referral import FeeSupportCorrected
from tests.unit.services.test_outcome_status_machine import (
    SEVERANCE,
    Run,
    hold,
    ids,
    linked,
    received,
    resumed,
    reviewed,
    scheduled,
    triaged,
)


def corrected(to: str = "full", before: str = "self-pay") -> FeeSupportCorrected:
    return FeeSupportCorrected(**ids(), fee_support=to, previous=before)  # type: ignore[arg-type]


def test_a_centres_cancellation_reaches_every_referral_as_cancelled_with_both_reasons() -> None:
    run = Run()(received(), triaged(), reviewed(), linked())
    run(CaseCancelled(**ids(), reason_code="deceased", cancelled_by="centre"))  # type: ignore[arg-type]

    for who in run.feeds:
        last = run.feeds[who][-1]
        assert (last["status"], last["business_status"], last["reason_code"]) == (
            "cancelled",
            "deceased",
            "deceased",
        )
        assert last["reason_ko"] == REASONS["deceased"].ko
    assert SEVERANCE in run.feeds
    run.assert_contract()


def test_a_reopened_unreachable_case_returns_to_the_status_it_left() -> None:
    run = Run()(received(), triaged(), reviewed(), scheduled(), hold("unreachable"))
    run(resumed(), scheduled())

    assert run.trail()[-3:] == [
        ("on-hold", "unreachable"),
        ("in-progress", "resumed"),
        ("in-progress", "pre-discharge-visit-scheduled"),
    ]
    run.assert_contract()


def test_a_fee_support_correction_is_a_step_inside_the_current_status() -> None:
    run = Run()(received(), triaged(), reviewed(), scheduled())
    run(corrected())

    last = run.feeds[("police-hospital", "ref-police-1")][-1]
    assert (last["status"], last["business_status"]) == ("in-progress", "fee-support-corrected")
    assert last["details"] == {"fee_support": "full", "previous_fee_support": "self-pay"}
    run.assert_contract()
    assert run.refusals == []


def test_a_correction_while_on_hold_keeps_the_hold_and_its_reason_and_may_still_resume() -> None:
    run = Run()(received(), triaged(), reviewed(), scheduled(), hold("unreachable"))
    run(corrected())

    last = run.feeds[("police-hospital", "ref-police-1")][-1]
    assert (last["status"], last["business_status"], last["reason_code"]) == (
        "on-hold",
        "fee-support-corrected",
        "unreachable",
    )
    assert last["reason_ko"] == REASONS["unreachable"].ko
    run(resumed())
    assert run.trail()[-1] == ("in-progress", "resumed")
    run.assert_contract()
    assert run.refusals == []
