"""The inbox: dedupe on our own event ids, inside the handler's transaction.

Never on FastStream's message id: that is offset + timestamp, so a republished
event would look new. A record without a `ce_id` (a hospital's broken record)
is identified by topic, partition and offset, which is stable across redeliveries.
"""

from __future__ import annotations

import asyncpg


async def claim(
    conn: asyncpg.Connection, consumer: str, event_id: str, *, replay: bool = False
) -> bool:
    """True if this consumer has not handled the event yet (and now owns it).

    A dead-lettered event may be handled again only when an operator replays it
    after a fix; an ordinary redelivery of it is still a duplicate.
    """
    claimed = await conn.fetchval(
        """INSERT INTO inbox (consumer, event_id) VALUES ($1, $2)
           ON CONFLICT (consumer, event_id) DO UPDATE
               SET status = 'handled', handled_at = now()
               WHERE inbox.status = 'dead-lettered' AND $3
           RETURNING true""",
        consumer,
        event_id,
        replay,
    )
    return bool(claimed)


async def mark_dead_lettered(conn: asyncpg.Connection, consumer: str, event_id: str) -> None:
    await conn.execute(
        """INSERT INTO inbox (consumer, event_id, status) VALUES ($1, $2, 'dead-lettered')
           ON CONFLICT (consumer, event_id) DO UPDATE SET status = 'dead-lettered', handled_at = now()""",
        consumer,
        event_id,
    )
