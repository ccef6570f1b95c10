"""A coordinator's cancellation, decided in intake's pure domain (issue 10)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from contracts.intake import CaseCancelled
from services.intake import domain

NOW = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)


def case(*, open: bool = True, discharged: bool = False) -> domain.CaseToEnd:
    return domain.CaseToEnd(
        case_id="case-1",
        open=open,
        discharged=discharged,
        hospital_id="police-hospital",
        referral_id="ref-1",
    )


@pytest.mark.parametrize("code", domain.COORDINATOR_CANCEL_REASONS)
def test_a_coordinator_cancels_an_open_case_with_the_same_event_a_hospital_causes(
    code: str,
) -> None:
    update = domain.coordinator_cancel(case(discharged=True), code, now=NOW)

    assert isinstance(update, domain.CaseUpdate)
    assert (update.open, update.discharged) == (False, True)
    event = update.event
    assert isinstance(event, CaseCancelled)
    assert (event.case_id, event.hospital_id, event.referral_id) == (
        "case-1",
        "police-hospital",
        "ref-1",
    )
    assert event.reason_code.value == code
    assert event.cancelled_by == "centre"
    assert event.occurred_at == NOW


def test_the_hospitals_own_withdrawal_is_not_a_coordinators_reason() -> None:
    refused = domain.coordinator_cancel(case(), "cancelled-by-hospital", now=NOW)

    assert isinstance(refused, domain.ExitRefused)
    assert refused.code == "invalid-request"
    assert "deceased" in refused.message


def test_a_finished_case_cannot_be_cancelled() -> None:
    refused = domain.coordinator_cancel(case(open=False), "deceased", now=NOW)

    assert refused == domain.ExitRefused(
        "case-closed", "the case is already finished: nothing to cancel"
    )


def test_a_hospitals_cancellation_still_says_the_hospital_cancelled() -> None:
    event = CaseCancelled(
        case_id="c",
        hospital_id="police-hospital",
        referral_id="r",
        occurred_at=NOW,
        reason_code="cancelled-by-hospital",  # type: ignore[arg-type]
    )

    assert event.cancelled_by == "hospital"
