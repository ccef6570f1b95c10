"""The transactional outbox and its relay.

Handlers never talk to Kafka: they call `enqueue` inside their transaction.
The relay, one active per service (a session advisory lock), publishes rows in
id order, keyed, and marks published only the rows up to the first one the broker
did not acknowledge: a later row must never overtake an earlier one. It wakes on
NOTIFY (sent at commit) and polls as a fallback, so a lost notification delays a
record by one poll interval at most. Delivery is at least once: a crash between
the broker's ack and the UPDATE republishes the batch, and consumers drop the
repeat by its event id.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import AsyncIterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from pydantic import BaseModel

from contracts.cloudevents import Envelope
from services.lib.runtime import tracing
from services.lib.runtime.db import init_connection
from services.lib.runtime.logging import get_logger
from services.lib.runtime.metrics import OUTBOX_BACKLOG, OUTBOX_FAILED, OUTBOX_PUBLISHED

log = get_logger(__name__)

NOTIFY_CHANNEL = "carelink_outbox"
_RELAY_LOCK = 0x6F75_7462  # "outb": one relay per service database
BACKLOG_EVERY_S = 1.0  # how often the relay counts its backlog for the gauge


def encode_headers(headers: Sequence[tuple[str, bytes]]) -> list[list[str]]:
    # Base64 because dead letters keep a hospital's original header bytes, UTF-8 or not.
    return [[name, base64.b64encode(value or b"").decode()] for name, value in headers]


def decode_headers(stored: Sequence[Sequence[str]]) -> list[tuple[str, bytes]]:
    return [(name, base64.b64decode(value)) for name, value in stored]


@dataclass
class _Collected:
    """Outbox rows a transaction has enqueued so far, written together at its end."""

    conn: asyncpg.Connection
    rows: list[tuple[str, bytes | None, bytes, list[list[str]]]] = field(default_factory=list)


_collected: ContextVar[_Collected | None] = ContextVar("carelink_outbox_collected", default=None)

# One statement for every row of a transaction, in the order they were enqueued (ids
# follow that order, and the relay publishes in id order), and one NOTIFY.
_INSERT_MANY = """
WITH rows AS (
    SELECT * FROM unnest($1::text[], $2::bytea[], $3::bytea[], $4::text[])
        WITH ORDINALITY AS r (topic, key, value, headers, n)
), inserted AS (
    INSERT INTO outbox (topic, key, value, headers)
    SELECT topic, key, value, headers::jsonb FROM rows ORDER BY n
)
SELECT pg_notify($5, '')
"""


@contextlib.asynccontextmanager
async def collected(conn: asyncpg.Connection) -> AsyncIterator[None]:
    """Inside this block (within a transaction on `conn`), `enqueue` on `conn` only
    collects its rows; at the end of the block they are written with one multi-row
    INSERT and one NOTIFY, instead of two round trips per row. Nothing is written if
    the block raises (the transaction rolls back anyway). Other connections and tasks
    are not affected.

    Use it only where a failure rolls back the whole transaction: after a savepoint's
    rollback, rows it collected would still be written.
    """
    token = _collected.set(_Collected(conn))
    try:
        yield
        pending = _collected.get()
        if pending is not None and pending.rows:
            await write_many(conn, pending.rows)
    finally:
        _collected.reset(token)


async def write_many(
    conn: asyncpg.Connection, rows: Sequence[tuple[str, bytes | None, bytes, list[list[str]]]]
) -> None:
    """(topic, key, value, encoded headers) rows in one statement, then one NOTIFY."""
    await conn.execute(
        _INSERT_MANY,
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        # As JSON text: asyncpg would take the nested lists for a multi-dimensional array.
        [json.dumps(r[3]) for r in rows],
        NOTIFY_CHANNEL,
    )


async def enqueue(
    conn: asyncpg.Connection,
    *,
    topic: str,
    key: bytes | None,
    value: bytes,
    headers: Sequence[tuple[str, bytes]],
) -> None:
    """Add one record to the outbox; it is published only if the transaction commits.

    The row's headers get the current trace context (W3C `traceparent`): the relay
    sends them as stored, so the record continues the trace of what wrote it.
    """
    pending = _collected.get()
    if pending is not None and pending.conn is conn:
        # The trace context is taken now, while the span that wrote the row is current.
        pending.rows.append((topic, key, value, encode_headers(tracing.inject(headers))))
        return
    await conn.execute(
        "INSERT INTO outbox (topic, key, value, headers) VALUES ($1, $2, $3, $4)",
        topic,
        key,
        value,
        encode_headers(tracing.inject(headers)),
    )
    await conn.execute("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)


async def enqueue_event(
    conn: asyncpg.Connection, *, topic: str, key: str, envelope: Envelope, data: BaseModel
) -> None:
    await enqueue(
        conn,
        topic=topic,
        key=key.encode(),
        value=data.model_dump_json().encode(),
        headers=envelope.to_headers(),
    )


async def backlog(conn: asyncpg.Connection) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM outbox WHERE published_at IS NULL AND failed_at IS NULL"
    )
    return count


class OutboxRelay:
    def __init__(
        self,
        *,
        service: str,
        database_url: str,
        producer: AIOKafkaProducer,
        batch_size: int = 500,
        poll_interval_s: float = 1.0,
    ) -> None:
        self._service = service
        self._url = database_url
        self._producer = producer
        self._batch_size = batch_size
        self._poll = poll_interval_s
        self._wake = asyncio.Event()
        self.active = False  # holds the lock: this instance is the one publishing
        self.healthy = True
        self._backlog_counted_at = 0.0  # monotonic time of the last backlog count

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until `stop` is set; survives database restarts by reconnecting."""
        # The relay's own polling is nobody's trace; each send joins its row's (`continued`).
        with tracing.untraced():
            await self._run(stop)

    async def _run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._run_connected(stop)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                self.active = False
                self.healthy = False
                log.warning("outbox relay lost its database connection", error=type(exc).__name__)
                await _sleep_or_stop(stop, self._poll)
            except Exception:
                # Broker timeouts and anything unforeseen: nothing was marked published, so
                # retrying republishes at worst. The relay must never die silently.
                self.active = False
                self.healthy = False
                log.exception("outbox relay failed, retrying")
                await _sleep_or_stop(stop, self._poll)

    async def _run_connected(self, stop: asyncio.Event) -> None:
        conn: asyncpg.Connection = await asyncpg.connect(self._url)
        await init_connection(conn)
        try:
            while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _RELAY_LOCK):
                self.active = False
                self.healthy = True  # standby is healthy: another instance publishes
                if await _sleep_or_stop(stop, self._poll):
                    return
            self.active = True
            log.info("outbox relay active")
            await conn.add_listener(NOTIFY_CHANNEL, self._on_notify)
            while not stop.is_set():
                # Cleared before reading the batch, not after publishing it: a NOTIFY that
                # arrives while the batch is in flight must cut the next wait short.
                self._wake.clear()
                published = await self._publish_batch(conn)
                self.healthy = True
                if published == self._batch_size:
                    continue  # more waiting: do not sleep between full batches
                with contextlib.suppress(TimeoutError):
                    waiter = asyncio.ensure_future(self._wake.wait())
                    stopper = asyncio.ensure_future(stop.wait())
                    try:
                        await asyncio.wait(
                            {waiter, stopper},
                            timeout=self._poll,
                            return_when=asyncio.FIRST_COMPLETED,
                        )
                    finally:
                        waiter.cancel()
                        stopper.cancel()
            # Drain what was committed before the stop so a clean shutdown leaves nothing behind.
            while await self._publish_batch(conn) == self._batch_size:
                pass
        finally:
            self.active = False
            with contextlib.suppress(Exception):
                await conn.close()

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def _publish_batch(self, conn: asyncpg.Connection) -> int:
        rows = await conn.fetch(
            "SELECT id, topic, key, value, headers FROM outbox"
            " WHERE published_at IS NULL AND failed_at IS NULL ORDER BY id LIMIT $1",
            self._batch_size,
        )
        if not rows:
            OUTBOX_BACKLOG.labels(self._service).set(0)
            return 0
        # The batch is sent, then its acks awaited once: send() only queues (aiokafka
        # groups the records per partition, in outbox order), and one gather waits for
        # all of them. Then one UPDATE marks what was acknowledged.
        sent: list[tuple[int, asyncio.Future[Any]]] = []
        errors: dict[int, BaseException | None] = {}
        for row in rows:
            headers = decode_headers(row["headers"])
            try:
                # The stored headers, under the context they hold: the record continues
                # the trace of the transaction that wrote the row, not the relay's.
                with tracing.continued(headers):
                    future = await self._producer.send(
                        row["topic"], value=row["value"], key=row["key"], headers=headers
                    )
            except KafkaError as exc:
                if exc.retriable:
                    raise
                errors[row["id"]] = exc
                continue
            sent.append((row["id"], future))
        results = await asyncio.gather(*(f for _, f in sent), return_exceptions=True)
        for (row_id, _), result in zip(sent, results, strict=True):
            errors[row_id] = result if isinstance(result, BaseException) else None
        # In outbox order, up to the first row the broker did not acknowledge for a
        # passing reason: that row and every row after it, acknowledged or not, are
        # sent again next round. Marking the later ones now would let them overtake it
        # (readers drop the repeats by event id).
        published: list[int] = []
        failed: dict[int, str] = {}
        transient: BaseException | None = None
        for row in rows:
            error = errors[row["id"]]
            if error is None:
                published.append(row["id"])
            elif isinstance(error, KafkaError) and not error.retriable:
                failed[row["id"]] = f"{type(error).__name__}: {error}"
            else:
                transient = error
                break
        await conn.execute(
            "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])", published
        )
        if failed:
            await self._give_up(conn, failed)
        OUTBOX_PUBLISHED.labels(self._service).inc(len(published))
        # A count(*) per batch cost as much as the batch's UPDATE under load: the gauge
        # is refreshed at most once a second (and set to 0 whenever the outbox is empty).
        if time.monotonic() - self._backlog_counted_at >= BACKLOG_EVERY_S:
            OUTBOX_BACKLOG.labels(self._service).set(await backlog(conn))
            self._backlog_counted_at = time.monotonic()
        if transient is not None:
            raise transient  # the relay loop waits and retries what is left
        return len(rows)

    async def _give_up(self, conn: asyncpg.Connection, failed: dict[int, str]) -> None:
        """Rows the broker will never take (too large, a bad topic) are set aside with the
        reason instead of stopping every later row; `carelink outbox` shows them."""
        await conn.execute(
            """UPDATE outbox SET failed_at = now(), error = f.error
               FROM unnest($1::bigint[], $2::text[]) AS f (id, error)
               WHERE outbox.id = f.id""",
            list(failed),
            [error[:2000] for error in failed.values()],
        )
        OUTBOX_FAILED.labels(self._service).inc(len(failed))
        log.error("outbox rows the broker refuses for good were set aside", count=len(failed))


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep, returning True at once when `stop` is set."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True
