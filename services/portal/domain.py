"""What a social worker may still send about a referral: pure rules, no I/O.

The contract lets a hospital correct (`referral.updated`), report the discharge
(`patient.discharged`) and withdraw (`referral.cancelled`) a referral; none of them
means anything once the referral reached a terminal status, and a discharge is
reported once (after it, a new expected discharge date means nothing either).
"""

from __future__ import annotations

from typing import Literal

from services.lib.labels import TERMINAL_STATUSES

Action = Literal["change-date", "discharge", "cancel"]
ACTIONS: tuple[Action, ...] = ("change-date", "discharge", "cancel")


def refusal(action: Action, status: str | None, discharged: bool) -> str | None:
    """Why `action` cannot be sent now (an error code of labels.ACTION_ERRORS), or None.

    `status` is the latest status the hospital received (None before the first
    update: the referral is on its way, and every action may already be sent, as a
    hospital system would); `discharged` whether the discharge was already sent.
    """
    if status in TERMINAL_STATUSES:
        return "terminal"
    if action in ("discharge", "change-date") and discharged:
        return "discharged"
    return None


def allowed(status: str | None, discharged: bool) -> list[Action]:
    return [a for a in ACTIONS if refusal(a, status, discharged) is None]
