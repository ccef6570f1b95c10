"""The FHIR R4 Task state machine of the hospital contract v1 (revision 2): which
`status` may follow which on one referral's updates feed.

One table, used by the outcome service before it sends an update (it refuses an
illegal move) and by everything that checks a feed from outside: the end-to-end
tests, the chaos verification, the simulated hospital's statistics. It lives in
`contracts/` because it is part of the public contract and because tools and tests
must not import a deployable to use it.

The contract's table (a repeat of the same status is a step inside it, with a new
`business_status`; that holds for a terminal status too: a repeated answer):

| from | to |
|---|---|
| (first update) | received, rejected |
| received | accepted, rejected, cancelled, on-hold |
| accepted | in-progress, on-hold, cancelled, failed, completed |
| in-progress | on-hold, cancelled, failed, completed |
| on-hold | the status it left, or cancelled, failed |
| rejected, cancelled, completed, failed | nothing: terminal |

A new in-progress step (a new `business_status`) needs no change here: only a new
`status` would, and FHIR R4 has no other.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from contracts.hospital_v1 import STATUSES_NEEDING_REASON, Status

RECEIVED, ACCEPTED, REJECTED = Status.RECEIVED, Status.ACCEPTED, Status.REJECTED
IN_PROGRESS, ON_HOLD, COMPLETED = Status.IN_PROGRESS, Status.ON_HOLD, Status.COMPLETED
CANCELLED, FAILED = Status.CANCELLED, Status.FAILED

TERMINAL: frozenset[Status] = frozenset({REJECTED, CANCELLED, COMPLETED, FAILED})

# From each status (None: no update yet), the other statuses it may move to. On hold,
# the status it left is allowed too (see `move_problem`).
MOVES: Mapping[Status | None, frozenset[Status]] = {
    None: frozenset({RECEIVED, REJECTED}),
    RECEIVED: frozenset({ACCEPTED, REJECTED, CANCELLED, ON_HOLD}),
    ACCEPTED: frozenset({IN_PROGRESS, ON_HOLD, CANCELLED, FAILED, COMPLETED}),
    IN_PROGRESS: frozenset({ON_HOLD, CANCELLED, FAILED, COMPLETED}),
    ON_HOLD: frozenset({CANCELLED, FAILED}),
    REJECTED: frozenset(),
    CANCELLED: frozenset(),
    COMPLETED: frozenset(),
    FAILED: frozenset(),
}


@dataclass(frozen=True)
class Position:
    """Where a feed stands: its last status (None before the first update) and, while
    on hold, the status the hold left (the one it may return to)."""

    status: Status | None = None
    held_from: Status | None = None


class IllegalMove(ValueError):
    pass


def move_problem(at: Position, to: Status) -> str | None:
    """Why `to` may not follow `at`; None when the move is legal."""
    if to == at.status:
        return None  # a step inside the status (for a terminal one: a repeated answer)
    if to in MOVES[at.status]:
        return None
    if at.status == ON_HOLD and to == at.held_from:
        return None
    where = "the first update" if at.status is None else at.status.value
    if at.status in TERMINAL:
        return f"{where} is terminal: nothing may follow it but a repeat, not {to.value}"
    if at.status == ON_HOLD:
        left = at.held_from.value if at.held_from is not None else "an unknown status"
        return f"on-hold (left {left}) may only return to {left} or end cancelled/failed, not {to.value}"
    return f"{to.value} may not follow {where}"


def advance(at: Position, to: Status) -> Position:
    """The position after a legal move; raises IllegalMove otherwise."""
    problem = move_problem(at, to)
    if problem is not None:
        raise IllegalMove(problem)
    if to == ON_HOLD:
        return Position(ON_HOLD, at.held_from if at.status == ON_HOLD else at.status)
    return Position(to)


def check_path(statuses: Iterable[str | Status]) -> list[str]:
    """Every problem with a feed's statuses in sequence order (empty: a legal path)."""
    problems: list[str] = []
    at = Position()
    for index, raw in enumerate(statuses, start=1):
        try:
            status = Status(raw)
        except ValueError:
            problems.append(f"#{index}: {raw!r} is not a FHIR Task status of the contract")
            continue
        problem = move_problem(at, status)
        if problem is not None:
            problems.append(f"#{index}: {problem}")
            continue  # judge the rest from where the feed legally stood
        at = advance(at, status)
    return problems


def check_updates(updates: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every problem with one referral's updates (their `data`, repeats included, in the
    order read): sequences 1..n without gaps, a repeated sequence identical, the status
    path legal, a reason code where the status needs one, `reason_ko` wherever a
    `reason` is. Empty: the feed keeps the contract."""
    problems: list[str] = []
    by_sequence: dict[int, Mapping[str, Any]] = {}
    for update in updates:
        sequence = int(update["sequence"])
        seen = by_sequence.get(sequence)
        if seen is None:
            by_sequence[sequence] = update
        elif dict(seen) != dict(update):
            problems.append(f"sequence {sequence} carried two different updates")
    ordered = [by_sequence[s] for s in sorted(by_sequence)]
    sequences = sorted(by_sequence)
    if sequences != list(range(1, len(sequences) + 1)):
        problems.append(f"sequences are not 1..n without gaps: {sequences}")
    referrals = {u.get("referral_id") for u in ordered}
    if len(referrals) > 1:
        problems.append(f"updates of several referrals mixed: {sorted(map(str, referrals))}")
    problems += check_path(u["status"] for u in ordered)
    for update in ordered:
        sequence, status = update["sequence"], update["status"]
        if status in {s.value for s in STATUSES_NEEDING_REASON} and not update.get("reason_code"):
            problems.append(f"#{sequence}: {status} without a reason_code")
        if update.get("reason") and not update.get("reason_ko"):
            problems.append(f"#{sequence}: a reason without reason_ko")
    return problems


def path_text(updates: Sequence[Mapping[str, Any]]) -> str:
    """`received/received → received/triaged → …`, for messages."""
    return " → ".join(f"{u['status']}/{u['business_status']}" for u in updates)
