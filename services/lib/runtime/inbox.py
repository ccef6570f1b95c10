"""The inbox: dedupe on the event's identity, inside the handler's transaction.

An event is identified by (ce_source, ce_id): CloudEvents makes ce_id unique only
within its source, so two hospitals may send the same ce_id and both events count.
Never on FastStream's message id: that is offset + timestamp, so a republished
event would look new. A record without ce_id or ce_source (a hospital's broken
record) is identified by topic, partition and offset with source '', which is
stable across redeliveries (see `Record.event_source`).

Rows written before the source was part of the key (migration 0003) have source
'' and a ce_id: for its consumer, such a row still stands for the event with that
ce_id from whichever source, so nothing handled before the upgrade is handled
again when it is redelivered after it. The price: only for those old ids, a second
source's event with the same ce_id is still taken for a duplicate.
"""

from __future__ import annotations

import asyncpg

# One statement, one round trip. `legacy` is a row from before migration 0003 for
# the same ce_id (only looked for when the event has a source): handled, it makes
# the event a duplicate; dead-lettered, only a replay may handle the event.
_CLAIM = """
WITH legacy AS (
    SELECT status FROM inbox
    WHERE consumer = $1 AND source = '' AND event_id = $3 AND $2 <> ''
)
INSERT INTO inbox (consumer, source, event_id)
SELECT $1, $2, $3
WHERE NOT EXISTS (SELECT 1 FROM legacy WHERE status = 'handled' OR NOT $4)
ON CONFLICT (consumer, source, event_id) DO UPDATE
    SET status = 'handled', handled_at = now()
    WHERE inbox.status = 'dead-lettered' AND $4
RETURNING true
"""


async def claim(
    conn: asyncpg.Connection,
    consumer: str,
    source: str,
    event_id: str,
    *,
    replay: bool = False,
) -> bool:
    """True if this consumer has not handled the event (source, event_id) yet (and now
    owns it).

    A dead-lettered event may be handled again only when an operator replays it
    after a fix; an ordinary redelivery of it is still a duplicate.
    """
    claimed = await conn.fetchval(_CLAIM, consumer, source, event_id, replay)
    return bool(claimed)


# The batch's claim, one statement for all its events. An event with a legacy row
# (source '', same ce_id) is a duplicate whatever that row's status: only a replay may
# handle a dead-lettered event again, and replays are claimed one by one (`claim`).
# Sorted, so two transactions claiming overlapping batches (a rebalance) lock in the
# same order and never deadlock.
_CLAIM_MANY = """
WITH incoming AS (
    SELECT DISTINCT source, event_id FROM unnest($2::text[], $3::text[]) AS i (source, event_id)
)
INSERT INTO inbox (consumer, source, event_id)
SELECT $1, i.source, i.event_id FROM incoming i
WHERE i.source = '' OR NOT EXISTS (
    SELECT 1 FROM inbox l WHERE l.consumer = $1 AND l.source = '' AND l.event_id = i.event_id
)
ORDER BY i.source, i.event_id
ON CONFLICT (consumer, source, event_id) DO NOTHING
RETURNING source, event_id
"""


async def claim_many(
    conn: asyncpg.Connection, consumer: str, identities: list[tuple[str, str]]
) -> set[tuple[str, str]]:
    """The (source, event_id) identities of `identities` this consumer had not handled
    yet, claimed now in one statement. For ordinary deliveries only (not replays)."""
    if not identities:
        return set()
    rows = await conn.fetch(
        _CLAIM_MANY, consumer, [i[0] for i in identities], [i[1] for i in identities]
    )
    return {(r["source"], r["event_id"]) for r in rows}


async def mark_dead_lettered(
    conn: asyncpg.Connection, consumer: str, source: str, event_id: str
) -> None:
    await conn.execute(
        """INSERT INTO inbox (consumer, source, event_id, status)
           VALUES ($1, $2, $3, 'dead-lettered')
           ON CONFLICT (consumer, source, event_id)
               DO UPDATE SET status = 'dead-lettered', handled_at = now()""",
        consumer,
        source,
        event_id,
    )
