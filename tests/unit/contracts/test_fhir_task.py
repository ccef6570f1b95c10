"""contracts/fhir_task.py: the FHIR Task table of the hospital contract v1, revision 2,
move by move, and the feed checks the tests and tools use."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from contracts.fhir_task import (
    MOVES,
    TERMINAL,
    IllegalMove,
    Position,
    advance,
    check_path,
    check_updates,
    move_problem,
    path_text,
)
from contracts.hospital_v1 import Status

R, A, J = Status.RECEIVED, Status.ACCEPTED, Status.REJECTED
P, H, D = Status.IN_PROGRESS, Status.ON_HOLD, Status.COMPLETED
C, F = Status.CANCELLED, Status.FAILED

# The contract's table, typed out again from ../shared/hospital-contract-v1.md (not
# derived from the code under test). On hold, "the status it left" is listed apart.
CONTRACT: dict[Status | None, set[Status]] = {
    None: {R, J},
    R: {A, J, C, H},
    A: {P, H, C, F, D},
    P: {H, C, F, D},
    H: {C, F},
    J: set(),
    C: set(),
    D: set(),
    F: set(),
}
NOT_HELD = [s for s in [None, *Status] if s != H]


def test_the_table_is_the_contracts() -> None:
    assert {k: set(v) for k, v in MOVES.items()} == CONTRACT
    assert {J, C, D, F} == TERMINAL


@pytest.mark.parametrize(
    ("at", "to"),
    list(itertools.product(NOT_HELD, list(Status))),
    ids=lambda s: getattr(s, "value", str(s)),
)
def test_each_move_from_a_status_not_on_hold(at: Status | None, to: Status) -> None:
    legal = to in CONTRACT[at] or to == at  # a repeat is a step inside the status
    problem = move_problem(Position(at), to)
    assert (problem is None) == legal, problem
    if legal:
        assert advance(Position(at), to).status == to
    else:
        with pytest.raises(IllegalMove):
            advance(Position(at), to)


@pytest.mark.parametrize(
    ("left", "to"),
    list(itertools.product([R, A, P], list(Status))),
    ids=lambda s: s.value,
)
def test_each_move_from_on_hold_depends_on_the_status_it_left(left: Status, to: Status) -> None:
    legal = to in {left, H, C, F}
    problem = move_problem(Position(H, left), to)
    assert (problem is None) == legal, problem


def test_on_hold_keeps_the_status_it_left_through_another_hold() -> None:
    at = advance(Position(P), H)
    assert at == Position(H, P)
    at = advance(at, H)  # waitlisted while unreachable: still left in-progress
    assert at == Position(H, P)
    assert advance(at, P) == Position(P)


def test_a_terminal_status_may_only_be_repeated() -> None:
    for status in TERMINAL:
        assert move_problem(Position(status), status) is None
        others = [s for s in Status if s != status]
        assert all(move_problem(Position(status), s) for s in others)


def test_check_path_accepts_the_contracts_paths() -> None:
    for path in (
        ["received", "received", "accepted", "in-progress", "in-progress", "completed"],
        ["received", "rejected"],
        ["rejected", "rejected"],
        ["received", "on-hold", "received", "accepted", "on-hold", "accepted", "in-progress"],
        ["received", "accepted", "in-progress", "on-hold", "on-hold", "in-progress", "failed"],
        ["received", "received", "cancelled", "cancelled"],
        ["received", "accepted", "on-hold", "cancelled"],
    ):
        assert check_path(path) == [], path


@pytest.mark.parametrize(
    ("path", "bad_at"),
    [
        (["accepted"], 1),
        (["received", "accepted", "rejected"], 3),  # the revision 1 bug
        (["received", "rejected", "received"], 3),  # a feed restarted after rejection
        (["received", "in-progress"], 2),
        (["received", "accepted", "on-hold", "in-progress"], 4),  # not the status it left
        (["received", "accepted", "completed", "cancelled"], 4),
        (["received", "on-hold", "accepted"], 3),
        (["received", "triaged"], 2),  # a business status is not a status
    ],
)
def test_check_path_names_the_first_illegal_move(path: list[str], bad_at: int) -> None:
    problems = check_path(path)
    assert problems, path
    assert problems[0].startswith(f"#{bad_at}:"), problems


def update(sequence: int, status: str, business: str, **extra: Any) -> dict[str, Any]:
    return {
        "referral_id": "r1",
        "sequence": sequence,
        "status": status,
        "business_status": business,
        **extra,
    }


def test_check_updates_passes_a_good_feed_with_a_repeated_record() -> None:
    rejected = update(
        2, "rejected", "can-manage-alone", reason_code="x", reason="y", reason_ko="와이"
    )
    feed = [update(1, "received", "received"), rejected, rejected]
    assert check_updates(feed) == []


def test_check_updates_finds_gaps_reasons_reason_ko_and_illegal_moves() -> None:
    feed = [
        update(1, "received", "received"),
        update(2, "accepted", "reviewed"),
        update(4, "rejected", "can-manage-alone", reason="no"),
        update(2, "accepted", "something else"),
    ]
    problems = check_updates(feed)
    text = "\n".join(problems)
    assert "sequence 2 carried two different updates" in text
    assert "without gaps" in text
    assert "rejected without a reason_code" in text
    assert "a reason without reason_ko" in text
    assert "rejected may not follow accepted" in text


def test_path_text_reads_like_a_trail() -> None:
    feed = [update(1, "received", "received"), update(2, "received", "triaged")]
    assert path_text(feed) == "received/received → received/triaged"
