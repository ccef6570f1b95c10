"""What a social worker may still send about a referral (services/portal/domain.py)."""

from __future__ import annotations

import pytest

from contracts.hospital_v1 import Status
from services.portal.domain import ACTIONS, allowed, refusal

TERMINAL = [Status.REJECTED, Status.CANCELLED, Status.COMPLETED, Status.FAILED]
OPEN = [None, Status.RECEIVED, Status.ACCEPTED, Status.IN_PROGRESS, Status.ON_HOLD]


@pytest.mark.parametrize("status", TERMINAL)
@pytest.mark.parametrize("action", ACTIONS)
def test_nothing_is_sent_after_a_terminal_status(action: str, status: Status) -> None:
    assert refusal(action, status.value, discharged=False) == "terminal"  # type: ignore[arg-type]


@pytest.mark.parametrize("status", OPEN)
def test_everything_may_be_sent_while_the_referral_is_open(status: Status | None) -> None:
    assert allowed(status.value if status else None, discharged=False) == list(ACTIONS)


def test_after_the_discharge_only_a_cancellation_remains() -> None:
    assert allowed(Status.IN_PROGRESS.value, discharged=True) == ["cancel"]
    assert refusal("discharge", Status.IN_PROGRESS.value, discharged=True) == "discharged"
