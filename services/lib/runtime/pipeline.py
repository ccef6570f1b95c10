"""The consumer pipeline: one record in, one transaction, then the offset.

For every record: bind the log context, claim it in the inbox and run the
handler in one transaction (commit, then the subscriber acks). A permanent
error dead-letters the record and acks; a transient one is retried with
backoff, and when retries run out the record is nacked (FastStream seeks back
to it), so the offset never moves past a record that was not handled.
An unexpected exception is retried like a transient one, then dead-lettered:
a bug must not block a partition for ever, and its record can be replayed
after the fix.

A batch (`handle_batch`) is one transaction with one inbox claim and one outbox
write for all its records; a handler that can take a set (`SetHandler`) gets the
new records at once, so it can read and write each table with one statement.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

import asyncpg
import structlog
from opentelemetry.trace import Span

from services.lib.runtime import inbox, outbox, tracing
from services.lib.runtime.deadletter import REPLAY_HEADER, send_to_dead_letters
from services.lib.runtime.errors import PermanentError, TransientFailure, describe, is_transient
from services.lib.runtime.logging import get_logger
from services.lib.runtime.metrics import DEAD_LETTERS, HANDLER_SECONDS, MESSAGES

log = get_logger(__name__)


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]

    def header(self, name: str) -> str | None:
        for header_name, raw in self.headers:
            if header_name.lower() == name:
                try:
                    return raw.decode("utf-8")
                except UnicodeDecodeError:
                    return None
        return None

    @property
    def identity(self) -> tuple[str, str]:
        """The event's identity, (ce_source, ce_id): CloudEvents makes ce_id unique only
        within its source, and two hospitals may send the same ce_id.

        A ce_id without a source identifies nothing: a record missing either (a
        hospital's broken record) is identified by ('', topic:partition:offset)
        instead, the same on every redelivery.
        """
        ce_id, source = self.header("ce_id"), self.header("ce_source")
        if ce_id and source:
            return source, ce_id
        return "", f"{self.topic}:{self.partition}:{self.offset}"

    @property
    def event_source(self) -> str:
        return self.identity[0]

    @property
    def event_id(self) -> str:
        return self.identity[1]

    @property
    def is_replay(self) -> bool:
        return self.header(REPLAY_HEADER) is not None

    @property
    def key_text(self) -> str | None:
        if self.key is None:
            return None
        try:
            return self.key.decode("utf-8")
        except UnicodeDecodeError:
            return None


Handler = Callable[[asyncpg.Connection, Record], Awaitable[None]]

# The context one record is handled in (its log fields and trace span); a set handler
# enters it around whatever it does for that record alone (its events, its log lines).
Scope = Callable[[Record], AbstractContextManager[object]]


class SetHandler(Protocol):
    """A handler that can also take a batch at once (set-based, see "Speed comes from
    working in sets" in the design notes): the pipeline has claimed every record in the
    inbox and hands over the new ones, in order; the handler reads what they need in one
    query per table, decides in pure code and writes each table with one statement.

    It returns the records it sets aside for good ({index: reason}, written nothing for
    them): the pipeline dead-letters those in the same transaction. Raising a
    PermanentError instead makes the pipeline redo the batch one record at a time.
    """

    async def handle_many(
        self, conn: asyncpg.Connection, records: Sequence[Record], scope: Scope
    ) -> dict[int, str]: ...


@dataclass
class RetryPolicy:
    attempts: int = 5
    base_delay_s: float = 0.2
    max_delay_s: float = 5.0

    def delay(self, attempt: int) -> float:
        return float(min(self.max_delay_s, self.base_delay_s * (2 ** (attempt - 1))))


class Pipeline:
    def __init__(
        self,
        *,
        service: str,
        consumer: str,
        pool: asyncpg.Pool,
        handler: Handler,
        retry: RetryPolicy,
        max_record_bytes: int = 1_000_000,
        oversize: Callable[[asyncpg.Connection, Record, int], Awaitable[None]] | None = None,
    ) -> None:
        self.service = service
        self.consumer = consumer
        self._pool = pool
        self._handler = handler
        # Handlers that use a few event types say which (CaseEventRouter.wants): the rest
        # are acknowledged without a transaction.
        self._wants: Callable[[Record], bool] | None = getattr(handler, "wants", None)
        self._retry = retry
        self._max_bytes = max_record_bytes
        # What to do with a record too large to store; None = dead-letter it.
        self._oversize = oversize
        self.last_transient_error: str | None = None

    async def __call__(self, record: Record) -> None:
        if self._wants is not None and not self._wants(record):
            MESSAGES.labels(self.service, self.consumer, "skipped").inc()
            return
        structlog.contextvars.bind_contextvars(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            event_source=record.event_source,
            event_id=record.event_id,
            ce_type=record.header("ce_type"),
        )
        started = time.perf_counter()
        try:
            # A child of the context in the record's headers: the rows the use case
            # writes carry it on (outbox.enqueue), so the referral stays one trace.
            with tracing.consuming(record, self.consumer) as span:
                structlog.contextvars.bind_contextvars(**tracing.log_ids(span))
                await self._handle_with_retries(record)
        finally:
            HANDLER_SECONDS.labels(self.service, self.consumer).observe(
                time.perf_counter() - started
            )
            structlog.contextvars.clear_contextvars()

    async def _handle_with_retries(self, record: Record) -> None:
        attempt = 0
        while True:
            attempt += 1
            try:
                outcome = await self._handle_once(record)
                MESSAGES.labels(self.service, self.consumer, outcome).inc()
                tracing.outcome(outcome)
                self.last_transient_error = None
                return
            except PermanentError as exc:
                await self._dead_letter(record, describe(exc), describe(exc))
                return
            except Exception as exc:
                transient = is_transient(exc)
                if transient:
                    self.last_transient_error = describe(exc)
                if attempt >= self._retry.attempts:
                    if transient:
                        MESSAGES.labels(self.service, self.consumer, "retried").inc()
                        log.warning(
                            "transient failure, record will be redelivered", error=describe(exc)
                        )
                        raise TransientFailure(describe(exc)) from exc
                    log.error("handler failed repeatedly", error=describe(exc), attempts=attempt)
                    # The dead letter gets the full text (it is kept like the record it holds);
                    # the log only what `describe` deems safe.
                    await self._dead_letter(record, f"{type(exc).__name__}: {exc}", describe(exc))
                    return
                log.warning(
                    "handler failed, retrying",
                    error=describe(exc),
                    attempt=attempt,
                    transient=transient,
                )
                await asyncio.sleep(self._retry.delay(attempt))

    async def _handle_once(self, record: Record) -> str:
        async with self._pool.acquire() as conn, conn.transaction():
            return await self._claim_and_handle(conn, record)

    async def _claim_and_handle(self, conn: asyncpg.Connection, record: Record) -> str:
        if not await inbox.claim(
            conn, self.consumer, record.event_source, record.event_id, replay=record.is_replay
        ):
            return "duplicate"
        # Checked after the claim: a redelivered oversized record that was already
        # dead-lettered is a duplicate, not a second dead letter.
        if len(record.value) > self._max_bytes:
            if self._oversize is None:
                raise PermanentError(f"record larger than {self._max_bytes} bytes")
            await self._oversize(conn, record, self._max_bytes)
            return "handled"
        await self._handler(conn, record)
        return "handled"

    async def handle_batch(self, records: list[Record]) -> None:
        """The fast path: one transaction for the whole batch.

        First without savepoints: the whole batch claimed in the inbox with one
        statement, its outbox rows written with one INSERT and one NOTIFY at the end
        (`outbox.collected`), and the new records handed to the handler's `handle_many`
        at once if it has one (a `SetHandler`), else handled one by one. If a record turns
        out to be permanently bad, that attempt is rolled back and the batch is redone
        with a savepoint per record: the bad one's savepoint is rolled back and it is
        dead-lettered in the same transaction. Anything else abandons the batch
        (nothing of it is committed) and handles its records one at a time with the
        usual retries, so batching changes how many commits a record takes, never what
        happens to it.
        """
        if self._wants is not None:
            wanted = [r for r in records if self._wants(r)]
            skipped = len(records) - len(wanted)
            if skipped:
                MESSAGES.labels(self.service, self.consumer, "skipped").inc(skipped)
            records = wanted
        if not records:
            return
        if len(records) == 1:
            await self(records[0])
            return
        started = time.perf_counter()
        try:
            try:
                outcomes, dead = await self._batch_once(records, savepoints=False)
            except PermanentError:
                outcomes, dead = await self._batch_once(records, savepoints=True)
        except Exception as exc:
            log.info(
                "batch falls back to one record at a time", error=describe(exc), size=len(records)
            )
            for record in records:
                await self(record)
            return
        per_record = (time.perf_counter() - started) / len(records)
        for outcome in outcomes:
            MESSAGES.labels(self.service, self.consumer, outcome).inc()
            HANDLER_SECONDS.labels(self.service, self.consumer).observe(per_record)
        for record, error in dead:
            DEAD_LETTERS.labels(self.service, record.topic).inc()
            log.warning(
                "record dead-lettered",
                error=error,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
            )
        self.last_transient_error = None

    async def _batch_once(
        self, records: Sequence[Record], *, savepoints: bool
    ) -> tuple[list[str], list[tuple[Record, str]]]:
        outcomes: list[str] = []
        dead: list[tuple[Record, str]] = []
        with tracing.handling_batch(self.consumer, len(records)) as batch:
            if not savepoints:
                async with (
                    self._pool.acquire() as conn,
                    conn.transaction(),
                    # Every outbox row of the batch in one INSERT, one NOTIFY.
                    outbox.collected(conn),
                ):
                    return await self._batch_fast(conn, records, batch)
            async with self._pool.acquire() as conn, conn.transaction():
                for record in records:
                    structlog.contextvars.bind_contextvars(
                        topic=record.topic,
                        partition=record.partition,
                        offset=record.offset,
                        event_source=record.event_source,
                        event_id=record.event_id,
                        ce_type=record.header("ce_type"),
                    )
                    # A child of the record's own trace, linked to the batch's span.
                    with tracing.consuming(record, self.consumer, batch=batch) as span:
                        structlog.contextvars.bind_contextvars(**tracing.log_ids(span))
                        try:
                            if savepoints:
                                async with conn.transaction():  # a savepoint
                                    outcomes.append(await self._claim_and_handle(conn, record))
                            else:
                                outcomes.append(await self._claim_and_handle(conn, record))
                            tracing.outcome(outcomes[-1])
                        except PermanentError as exc:
                            if not savepoints:
                                raise  # the whole attempt rolls back; redone with savepoints
                            await self._write_dead_letter(conn, record, describe(exc))
                            tracing.outcome("dead-lettered", error=describe(exc))
                            outcomes.append("dead-lettered")
                            dead.append((record, describe(exc)))
                        finally:
                            structlog.contextvars.clear_contextvars()
        return outcomes, dead

    async def _batch_fast(
        self, conn: asyncpg.Connection, records: Sequence[Record], batch: Span
    ) -> tuple[list[str], list[tuple[Record, str]]]:
        """The batch with one inbox claim for all of it, then the new records handled in
        order: by the handler's `handle_many` when it has one, else one by one."""
        claimed = await self._claim_batch(conn, records)
        outcomes = ["handled" if c else "duplicate" for c in claimed]
        dead: list[tuple[Record, str]] = []
        new = [i for i, c in enumerate(claimed) if c]
        handle_many = getattr(self._handler, "handle_many", None)
        oversized = any(len(records[i].value) > self._max_bytes for i in new)

        def scope(record: Record) -> AbstractContextManager[object]:
            return self._scope(record, batch)

        if handle_many is not None and not oversized:
            aside = await handle_many(conn, [records[i] for i in new], scope) if new else {}
            for j, error in sorted(aside.items()):
                record = records[new[j]]
                with scope(record):
                    await self._write_dead_letter(conn, record, error)
                    tracing.outcome("dead-lettered", error=error)
                outcomes[new[j]] = "dead-lettered"
                dead.append((record, error))
            return outcomes, dead
        for i in new:
            record = records[i]
            with scope(record):
                if len(record.value) > self._max_bytes:
                    if self._oversize is None:
                        raise PermanentError(f"record larger than {self._max_bytes} bytes")
                    await self._oversize(conn, record, self._max_bytes)
                else:
                    await self._handler(conn, record)
                tracing.outcome("handled")
        return outcomes, dead

    async def _claim_batch(self, conn: asyncpg.Connection, records: Sequence[Record]) -> list[bool]:
        """For each record, whether it is new to this consumer (and now claimed): one
        statement for the batch; replays of dead letters one by one, as `inbox.claim`
        knows them; a repeat inside the batch is a duplicate of its first copy."""
        fresh = await inbox.claim_many(
            conn, self.consumer, [r.identity for r in records if not r.is_replay]
        )
        claimed: list[bool] = []
        taken: set[tuple[str, str]] = set()
        for record in records:
            identity = record.identity
            if identity in taken:
                claimed.append(False)
            elif record.is_replay:
                claimed.append(await inbox.claim(conn, self.consumer, *identity, replay=True))
            else:
                claimed.append(identity in fresh)
            if claimed[-1]:
                taken.add(identity)
        return claimed

    @contextlib.contextmanager
    def _scope(self, record: Record, batch: Span) -> Iterator[object]:
        """One record's log fields and trace span (a child of its own trace, linked to
        the batch's)."""
        structlog.contextvars.bind_contextvars(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            event_source=record.event_source,
            event_id=record.event_id,
            ce_type=record.header("ce_type"),
        )
        try:
            with tracing.consuming(record, self.consumer, batch=batch) as span:
                structlog.contextvars.bind_contextvars(**tracing.log_ids(span))
                yield span
        finally:
            structlog.contextvars.clear_contextvars()

    async def _dead_letter(self, record: Record, error: str, safe_error: str) -> None:
        # If even this fails (database down), the exception nacks the record: nothing is lost.
        async with self._pool.acquire() as conn, conn.transaction():
            await self._write_dead_letter(conn, record, error)
        MESSAGES.labels(self.service, self.consumer, "dead-lettered").inc()
        DEAD_LETTERS.labels(self.service, record.topic).inc()
        tracing.outcome("dead-lettered", error=safe_error)
        log.warning("record dead-lettered", error=safe_error)

    async def _write_dead_letter(
        self, conn: asyncpg.Connection, record: Record, error: str
    ) -> None:
        await send_to_dead_letters(
            conn,
            consumer=self.consumer,
            event_source=record.event_source,
            event_id=record.event_id,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            headers=record.headers,
            error=error,
            max_bytes=self._max_bytes,
        )
