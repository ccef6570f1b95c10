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
from collections.abc import Sequence
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


def encode_headers(headers: Sequence[tuple[str, bytes]]) -> list[list[str]]:
    # Base64 because dead letters keep a hospital's original header bytes, UTF-8 or not.
    return [[name, base64.b64encode(value or b"").decode()] for name, value in headers]


def decode_headers(stored: Sequence[Sequence[str]]) -> list[tuple[str, bytes]]:
    return [(name, base64.b64decode(value)) for name, value in stored]


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
        # send() only queues; awaiting every future afterwards lets aiokafka batch the
        # records while keeping outbox order per partition.
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
        OUTBOX_BACKLOG.labels(self._service).set(await backlog(conn))
        if transient is not None:
            raise transient  # the relay loop waits and retries what is left
        return len(rows)

    async def _give_up(self, conn: asyncpg.Connection, failed: dict[int, str]) -> None:
        """Rows the broker will never take (too large, a bad topic) are set aside with the
        reason instead of stopping every later row; `carelink outbox` shows them."""
        for row_id, error in failed.items():
            await conn.execute(
                "UPDATE outbox SET failed_at = now(), error = $2 WHERE id = $1",
                row_id,
                error[:2000],
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
