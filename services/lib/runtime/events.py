"""Appending events to `care.cases` and reading them back: the one way every
service does it, so keys, envelopes and causation links are always the same."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import asyncpg
import structlog

from contracts import catalog  # noqa: F401  (registers every case event type)
from contracts.cases import CASE_EVENT_TYPES, CaseEvent, decode_case_event
from contracts.cloudevents import Envelope, EnvelopeError
from contracts.topics import CASES
from services.lib.runtime import outbox
from services.lib.runtime.errors import PermanentError
from services.lib.runtime.pipeline import Record

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


class CaseEventRouter:
    """Calls the handler registered for a care.cases event's type; ignores the rest.

    Every service reads every case event and uses a few: that is the price of one
    ordered topic per case (see ../shared/design.md), paid here, once.
    """

    def __init__(self, handlers: Mapping[type[CaseEvent], CaseHandler]) -> None:
        self._handlers = dict(handlers)
        self._types = frozenset(model.ce_type for model in handlers)

    def wants(self, record: Record) -> bool:
        """Whether the record is one of the routed types, read from its header alone.

        The pipeline asks before it opens a transaction: the other event types are
        acknowledged without touching the database (no inbox row, no round trip).
        A record without a readable ce_type is wanted, so it fails loudly.
        """
        ce_type = record.header("ce_type")
        return ce_type is None or ce_type in self._types

    async def __call__(self, conn: asyncpg.Connection, record: Record) -> None:
        event = read_case_event(record)
        if event is None:
            return
        handler = self._handlers.get(type(event))
        if handler is not None:
            structlog.contextvars.bind_contextvars(case_id=event.case_id)
            await handler(conn, record, event)
