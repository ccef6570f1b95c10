"""Dead letters: the original bytes and headers, plus why, on `<topic>.dlq`.

Written through the outbox, in the same transaction that marks the event as
dead-lettered in the inbox, so a dead letter is neither lost nor written twice
when the consumer crashes before committing its offset.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg

from contracts.topics import dead_letters
from services.lib.runtime import inbox, outbox

# Headers added to the original ones; the replay tool reads them to send the record home.
ERROR_HEADER = "carelink_dlq_error"
SOURCE_TOPIC_HEADER = "carelink_dlq_topic"
SOURCE_PARTITION_HEADER = "carelink_dlq_partition"
SOURCE_OFFSET_HEADER = "carelink_dlq_offset"
CONSUMER_HEADER = "carelink_dlq_consumer"
FAILED_AT_HEADER = "carelink_dlq_failed_at"
# Set when the original was too large to dead-letter whole: its size in bytes.
TRUNCATED_HEADER = "carelink_dlq_truncated"
# Set when the original headers were too large to keep: how many were dropped.
HEADERS_DROPPED_HEADER = "carelink_dlq_headers_dropped"
# Room kept for our own headers and the record's framing.
_RESERVED = 8 * 1024
# Set by the replay tool on a record sent back to its source topic.
REPLAY_HEADER = "carelink_replay"

# Errors are written by our code from exception messages that never include values,
# but a bound keeps a surprising one from growing the record without limit.
_MAX_ERROR = 2000


async def send_to_dead_letters(
    conn: asyncpg.Connection,
    *,
    consumer: str,
    event_source: str,
    event_id: str,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes,
    headers: Sequence[tuple[str, bytes]],
    error: str,
    max_bytes: int = 1_000_000,
) -> None:
    """Dead-letter a record. One larger than `max_bytes` (what the relay's producer can
    send) keeps its first bytes and says so: the whole original stays on the source
    topic at the partition and offset the headers name."""
    extra = [
        (ERROR_HEADER, error[:_MAX_ERROR].encode()),
        (SOURCE_TOPIC_HEADER, topic.encode()),
        (SOURCE_PARTITION_HEADER, str(partition).encode()),
        (SOURCE_OFFSET_HEADER, str(offset).encode()),
        (CONSUMER_HEADER, consumer.encode()),
        (FAILED_AT_HEADER, datetime.now(UTC).isoformat().encode()),
    ]
    original = [(name, value_) for name, value_ in headers if not name.startswith("carelink_dlq_")]
    header_bytes = sum(len(name) + len(raw or b"") for name, raw in original)
    if header_bytes > max_bytes // 2:
        extra.append((HEADERS_DROPPED_HEADER, str(len(original)).encode()))
        original, header_bytes = [], 0
    room = max_bytes - header_bytes - _RESERVED
    if len(value) > room:
        extra.append((TRUNCATED_HEADER, str(len(value)).encode()))
        value = value[: max(room, 0)]
    await inbox.mark_dead_lettered(conn, consumer, event_source, event_id)
    await outbox.enqueue(
        conn, topic=dead_letters(topic), key=key, value=value, headers=[*original, *extra]
    )
