"""Appending events to `care.cases` and reading them back: the one way every
service does it, so keys, envelopes and causation links are always the same.

`CaseEventRouter` routes each record to the handler of its event type. For a batch
(`handle_many`, the pipeline's set path, issue 12) a type may also have a set handler
that takes a whole run of consecutive records of that type at once, so a batch of
mostly one type (the intake benchmark's `CaseAccepted`s) is written with a statement
per table instead of per record.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog
from pydantic import ValidationError

from contracts import catalog  # noqa: F401  (registers every case event type)
from contracts.cases import CASE_EVENT_TYPES, CaseEvent, decode_case_event
from contracts.cloudevents import Envelope, EnvelopeError
from contracts.topics import CASES
from services.lib.runtime import outbox
from services.lib.runtime.errors import PermanentError, describe
from services.lib.runtime.pipeline import Record, Scope

# A CloudEvents extension naming the event that caused this one: `carelink trace` follows it.
CAUSATION = "causationid"


async def emit(
    conn: asyncpg.Connection, event: CaseEvent, *, service: str, cause: Record | None = None
) -> None:
    """Append `event` to care.cases through the outbox, keyed by its case id."""
    extensions = {CAUSATION: cause.event_id} if cause is not None else {}
    envelope = Envelope.new(
        source=f"carelink/{service}",
        type=event.ce_type,
        subject=event.case_id,
        time=event.occurred_at,
        extensions=extensions,
    )
    await outbox.enqueue_event(conn, topic=CASES, key=event.case_id, envelope=envelope, data=event)


def read_case_event(record: Record) -> CaseEvent | None:
    """Decode a care.cases record; None for types this build does not know.

    Unknown types are skipped, not dead-lettered: a newer producer may add event
    types that older consumers have no use for. A known type that fails to parse
    is a producer bug and goes to the dead letters.
    """
    try:
        envelope = Envelope.from_headers(record.headers)
    except EnvelopeError as exc:
        raise PermanentError(f"bad envelope on {CASES}: {exc}") from exc
    if envelope.type not in CASE_EVENT_TYPES:
        return None
    return decode_case_event(envelope.type, record.value)


CaseHandler = Callable[[asyncpg.Connection, Record, Any], Awaitable[None]]
# A run of consecutive records of one type, each with its event, in order; the scope is
# the one each record's own work (its log lines, its events) is done in.
CaseSetHandler = Callable[[asyncpg.Connection, list[tuple[Record, Any]], Scope], Awaitable[None]]


def _parse(record: Record) -> CaseEvent | None:
    """`read_case_event`, with a known type that fails validation made a PermanentError:
    the same bytes never parse, so retrying them only delays the dead letter."""
    try:
        return read_case_event(record)
    except ValidationError as exc:
        raise PermanentError(describe(exc)) from exc


@dataclass(frozen=True)
class Run:
    """Consecutive records of a batch, as `runs` cut it: `indexes` into the batch, and
    whether they go to their type's set handler together (`together`) or one by one."""

    indexes: tuple[int, ...]
    together: bool


def runs(
    types: Sequence[type[CaseEvent] | None], set_types: frozenset[type[CaseEvent]]
) -> list[Run]:
    """Cut a batch, given each record's event type (None: nothing to do with it), into
    the maximal runs of consecutive records of one type that has a set handler, and
    single records for the rest, in the batch's order: handled in this order, every
    record comes after the ones before it, so each case's events keep their order."""
    cut: list[Run] = []
    for index, kind in enumerate(types):
        together = kind is not None and kind in set_types
        previous = cut[-1] if cut else None
        if (
            together
            and previous is not None
            and previous.together
            and types[previous.indexes[0]] is kind
        ):
            cut[-1] = Run((*previous.indexes, index), True)
        else:
            cut.append(Run((index,), together))
    return cut


class CaseEventRouter:
    """Calls the handler registered for a care.cases event's type; ignores the rest.

    Every service reads every case event and uses a few: that is the price of one
    ordered topic per case (see ../shared/design.md), paid here, once.

    `set_handlers` (optional) take a run of consecutive events of their type at once
    (`handle_many`); a type may have one, the other or both. Without a per-record
    handler, a single record goes to the set handler as a run of one.
    """

    def __init__(
        self,
        handlers: Mapping[type[CaseEvent], CaseHandler],
        set_handlers: Mapping[type[CaseEvent], CaseSetHandler] | None = None,
    ) -> None:
        self._handlers = dict(handlers)
        self._set_handlers = dict(set_handlers or {})
        self._set_types = frozenset(self._set_handlers)
        self._types = frozenset(model.ce_type for model in (*handlers, *self._set_handlers))

    def wants(self, record: Record) -> bool:
        """Whether the record is one of the routed types, read from its header alone.

        The pipeline asks before it opens a transaction: the other event types are
        acknowledged without touching the database (no inbox row, no round trip).
        A record without a readable ce_type is wanted, so it fails loudly.
        """
        ce_type = record.header("ce_type")
        return ce_type is None or ce_type in self._types

    async def __call__(self, conn: asyncpg.Connection, record: Record) -> None:
        event = _parse(record)
        if event is not None:
            await self._one(conn, record, event)

    async def _one(self, conn: asyncpg.Connection, record: Record, event: CaseEvent) -> None:
        """One record, in the scope the caller opened for it."""
        handler = self._handlers.get(type(event))
        set_handler = self._set_handlers.get(type(event))
        if handler is not None or set_handler is not None:
            structlog.contextvars.bind_contextvars(case_id=event.case_id)
        if handler is not None:
            await handler(conn, record, event)
        elif set_handler is not None:
            await set_handler(conn, [(record, event)], lambda _: contextlib.nullcontext())

    # Always there, set handlers or not (the pipeline's `SetHandler`): for a router
    # without them it does what the pipeline's own loop would (each record in its scope,
    # in order), but a record that cannot be parsed is set aside for the dead letters
    # in the same transaction instead of making the pipeline redo the whole batch with
    # a savepoint per record. One path for every batch is also one path to test.
    async def handle_many(
        self, conn: asyncpg.Connection, records: Sequence[Record], scope: Scope
    ) -> dict[int, str]:
        aside: dict[int, str] = {}
        events: list[CaseEvent | None] = []
        for index, record in enumerate(records):
            try:
                events.append(_parse(record))
            except PermanentError as exc:
                aside[index] = describe(exc)  # nothing written for it: dead-lettered
                events.append(None)
        types = [type(event) if event is not None else None for event in events]
        for run in runs(types, self._set_types):
            first = run.indexes[0]
            event = events[first]
            if event is None:
                continue  # set aside, or a type this build does not know
            if run.together:
                items = [(records[i], events[i]) for i in run.indexes]
                await self._set_handlers[type(event)](conn, items, scope)
            else:
                with scope(records[first]):
                    await self._one(conn, records[first], event)
        return aside
