"""The exits taken on a case (issue 10), merged from the three services that audit
them: intake's cancellations (GET /v1/cases/{id}/exits), scheduling's reopened
visits (GET /v1/cases/{id}/reopens) and referral's fee-support corrections
(GET /v1/cases/{id}/fee-support). Pure: the answers in, one list out, oldest first.
A service that does not know the case (yet) answers None: it has no exit to add.
"""

from __future__ import annotations

from typing import Any

from services.console.schemas import ExitOut


def exit_history(
    cancels: list[dict[str, Any]] | None,
    reopens: list[dict[str, Any]] | None,
    corrections: list[dict[str, Any]] | None,
) -> list[ExitOut]:
    exits = [
        ExitOut(
            action="cancel",
            service="intake",
            at=row["at"],
            actor=row["actor"],
            reason_code=row.get("reason_code"),
            note=row.get("note") or None,
        )
        for row in cancels or []
        # case_exits is for every exit intake owns; only cancellations exist today.
        if row.get("action", "cancel") == "cancel"
    ]
    exits += [
        ExitOut(
            action="reopen",
            service="scheduling",
            at=row["at"],
            actor=row["actor"],
            reason_code=row.get("reason_code"),
            note=row.get("note") or None,
            task_id=row.get("task_id"),
            kind=row.get("kind"),
        )
        for row in reopens or []
    ]
    exits += [
        ExitOut(
            action="fee-support",
            service="referral",
            at=row["at"],
            actor=row["actor"],
            # Destroyed with the personal data (PIPA): the note is emptied, not removed.
            note=row.get("note") or None,
            previous=row.get("previous"),
            fee_support=row.get("fee_support"),
        )
        for row in corrections or []
    ]
    return sorted(exits, key=lambda e: e.at)
