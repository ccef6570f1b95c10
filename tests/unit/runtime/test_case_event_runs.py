"""The case-event router's set path (issue 12): a batch is cut into maximal runs of
consecutive records of one type that has a set handler, every other record goes to its
per-record handler on its own, all in the batch's order; a record that cannot be parsed
is set aside. Pure: the handlers here record what they are given, no server."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from contracts.cloudevents import Envelope
from contracts.intake import CaseAccepted, CaseCancelled
from contracts.scheduling import VisitDone
from contracts.topics import CASES
from services.lib.runtime.events import CaseEventRouter, Run, runs
from services.lib.runtime.pipeline import Record

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
A, V, C = CaseAccepted, VisitDone, CaseCancelled


def test_runs_group_consecutive_records_of_a_set_type_and_keep_the_rest_single() -> None:
    types: list[Any] = [A, A, V, A, None, A, A, A, C, C]
    assert runs(types, frozenset({A})) == [
        Run((0, 1), True),
        Run((2,), False),
        Run((3,), True),
        Run((4,), False),
        Run((5, 6, 7), True),
        Run((8,), False),
        Run((9,), False),
    ]


def test_runs_of_two_set_types_do_not_merge_and_without_set_types_every_record_is_single() -> None:
    types: list[Any] = [A, A, C, C, A]
    assert runs(types, frozenset({A, C})) == [
        Run((0, 1), True),
        Run((2, 3), True),
        Run((4,), True),
    ]
    assert runs(types, frozenset()) == [Run((i,), False) for i in range(5)]
    assert runs([], frozenset({A})) == []


def _event(kind: type[Any], case_id: str) -> Any:
    base = {
        "case_id": case_id,
        "hospital_id": "seoul-general",
        "referral_id": f"REF-{case_id}",
        "occurred_at": NOW,
    }
    if kind is CaseAccepted:
        return CaseAccepted(
            **base,
            person_id=f"person-{case_id}",
            policy_year=2026,
            fee_support="full",
            centre_id="songpa-care-sos",
            district="Songpa-gu",
            priority="routine",
            review_deadline=NOW + timedelta(hours=72),
            expected_discharge_date=NOW.date() + timedelta(days=5),
            requested_services=["meal_delivery"],
        )
    if kind is VisitDone:
        return VisitDone(**base, kind="pre-discharge", precautions_acknowledged=True)
    return CaseCancelled(**base, reason_code="declined-by-patient")


def _record(offset: int, event: Any, *, value: bytes | None = None) -> Record:
    envelope = Envelope.new(
        source="carelink/test", type=event.ce_type, subject=event.case_id, time=NOW
    )
    return Record(
        topic=CASES,
        partition=0,
        offset=offset,
        key=event.case_id.encode(),
        value=value if value is not None else event.model_dump_json().encode(),
        headers=tuple(envelope.to_headers()),
    )


class Calls:
    """Handlers that note what they get, in order, and in which scope."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, list[int]]] = []
        self.scoped: list[int] = []
        self._current: int | None = None

    @contextlib.contextmanager
    def scope(self, record: Record) -> Iterator[object]:
        self._current = record.offset
        try:
            yield None
        finally:
            self._current = None

    async def single(self, conn: Any, record: Record, event: Any) -> None:
        assert self._current == record.offset, "a single record is handled in its own scope"
        self.seen.append((type(event).__name__, [record.offset]))

    async def many(self, conn: Any, items: list[tuple[Record, Any]], scope: Any) -> None:
        for record, event in items:
            assert event.case_id == record.key_text  # each record with its own event
            with scope(record):
                self.scoped.append(record.offset)
        self.seen.append((type(items[0][1]).__name__, [r.offset for r, _ in items]))


async def test_handle_many_hands_runs_to_the_set_handler_and_the_rest_one_by_one_in_order() -> None:
    calls = Calls()
    router = CaseEventRouter(
        {VisitDone: calls.single, CaseCancelled: calls.single, CaseAccepted: calls.single},
        {CaseAccepted: calls.many},
    )
    kinds = [A, A, A, V, C, A, A]
    records = [_record(i, _event(kind, f"case-{i}")) for i, kind in enumerate(kinds)]

    aside = await router.handle_many(None, records, calls.scope)

    assert aside == {}
    assert calls.seen == [
        ("CaseAccepted", [0, 1, 2]),
        ("VisitDone", [3]),
        ("CaseCancelled", [4]),
        ("CaseAccepted", [5, 6]),
    ]
    assert calls.scoped == [0, 1, 2, 5, 6]


async def test_a_record_that_cannot_be_parsed_is_set_aside_and_splits_nothing_else() -> None:
    calls = Calls()
    router = CaseEventRouter({VisitDone: calls.single}, {CaseAccepted: calls.many})
    broken = json.dumps({"case_id": "case-2"}).encode()  # a known type missing its fields
    no_envelope = Record(topic=CASES, partition=0, offset=4, key=b"case-4", value=b"{}", headers=())
    records = [
        _record(0, _event(A, "case-0")),
        _record(1, _event(A, "case-1")),
        _record(2, _event(A, "case-2"), value=broken),
        _record(3, _event(A, "case-3")),
        no_envelope,
        _record(5, _event(V, "case-5")),
    ]

    aside = await router.handle_many(None, records, calls.scope)

    assert sorted(aside) == [2, 4]
    assert "invalid" in aside[2]
    assert "case-2" not in aside[2]
    # The records either side of the bad one are still handled, in order (as two runs:
    # the bad one stands between them).
    assert calls.seen == [("CaseAccepted", [0, 1]), ("CaseAccepted", [3]), ("VisitDone", [5])]


async def test_a_router_without_set_handlers_handles_a_batch_one_by_one_in_scope() -> None:
    calls = Calls()
    router = CaseEventRouter({CaseAccepted: calls.single, VisitDone: calls.single})
    records = [_record(i, _event(kind, f"case-{i}")) for i, kind in enumerate([A, A, C, V])]

    aside = await router.handle_many(None, records, calls.scope)

    # The cancellation has no handler here: nothing is done with it.
    assert aside == {}
    assert calls.seen == [("CaseAccepted", [0]), ("CaseAccepted", [1]), ("VisitDone", [3])]


async def test_a_single_record_of_a_type_with_only_a_set_handler_is_a_run_of_one() -> None:
    calls = Calls()
    router = CaseEventRouter({}, {CaseAccepted: calls.many})
    record = _record(7, _event(A, "case-7"))

    assert router.wants(record)
    await router(None, record)

    assert calls.seen == [("CaseAccepted", [7])]
