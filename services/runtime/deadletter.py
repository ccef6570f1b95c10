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
from services.runtime import inbox, outbox

# Headers added to the original ones; the replay tool reads them to send the record home.
ERROR_HEADER = "carelink_dlq_error"
SOURCE_TOPIC_HEADER = "carelink_dlq_topic"
SOURCE_PARTITION_HEADER = "carelink_dlq_partition"
SOURCE_OFFSET_HEADER = "carelink_dlq_offset"
CONSUMER_HEADER = "carelink_dlq_consumer"
FAILED_AT_HEADER = "carelink_dlq_failed_at"
# Set by the replay tool on a record sent back to its source topic.
REPLAY_HEADER = "carelink_replay"

# Errors are written by our code from exception messages that never include values,
# but a bound keeps a surprising one from growing the record without limit.
_MAX_ERROR = 2000


async def send_to_dead_letters(
    conn: asyncpg.Connection,
    *,
    consumer: str,
    event_id: str,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes,
    headers: Sequence[tuple[str, bytes]],
    error: str,
) -> None:
    extra = [
        (ERROR_HEADER, error[:_MAX_ERROR].encode()),
        (SOURCE_TOPIC_HEADER, topic.encode()),
        (SOURCE_PARTITION_HEADER, str(partition).encode()),
        (SOURCE_OFFSET_HEADER, str(offset).encode()),
        (CONSUMER_HEADER, consumer.encode()),
        (FAILED_AT_HEADER, datetime.now(UTC).isoformat().encode()),
    ]
    original = [(name, value_) for name, value_ in headers if not name.startswith("carelink_dlq_")]
    await inbox.mark_dead_lettered(conn, consumer, event_id)
    await outbox.enqueue(
        conn, topic=dead_letters(topic), key=key, value=value, headers=[*original, *extra]
    )
