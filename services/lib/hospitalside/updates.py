"""Following `hospital.<id>.updates` for the hospitals a gateway serves, into the
gateway's own table `hospital_updates` (this package's migration), and reading it.

`UpdatesFollower` is a record handler for the runtime's consumer pipeline
(services/lib/runtime/pipeline.py): the pipeline claims each record in the inbox and
runs the handler in one transaction, with retries on passing faults. The handler
never raises for a bad record: an updates topic has no dead-letter topic (the
contract declares none), so a record that is not a readable update is noted in
`hospital_unreadable_updates` with its partition and offset, and the partition moves on.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

import asyncpg
from pydantic import ValidationError

from contracts import topics
from contracts.hospital_v1 import STATUS_CHANGED, StatusChanged
from services.lib.hospitalside.timeline import StoredUpdate
from services.lib.runtime.logging import get_logger
from services.lib.runtime.pipeline import Record

log = get_logger(__name__)


def updates_topics(hospital_ids: Iterable[str]) -> list[str]:
    """The updates topics of exactly these hospitals: a gateway reads no other one."""
    return [topics.updates(h) for h in sorted(set(hospital_ids))]


class UpdatesFollower:
    """Stores every status update of the served hospitals, once per sequence."""

    def __init__(self, hospital_ids: Iterable[str]) -> None:
        self._topics = {topics.updates(h): h for h in hospital_ids}

    def wants(self, record: Record) -> bool:
        # Asked by the pipeline before it opens a transaction.
        return record.topic in self._topics

    async def __call__(self, conn: asyncpg.Connection, record: Record) -> None:
        hospital_id = self._topics.get(record.topic)
        if hospital_id is None:
            return  # not a served hospital's topic: never ours to read
        ce_type = record.header("ce_type")
        if ce_type is not None and ce_type != STATUS_CHANGED:
            await _unreadable(conn, record, f"ce_type {ce_type} is not {STATUS_CHANGED}")
            return
        try:
            update = StatusChanged.model_validate_json(record.value)
        except ValidationError as exc:
            # Field paths and error types only: never values.
            fields = ", ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(record)'}: {e['type']}"
                for e in exc.errors()
            )
            await _unreadable(conn, record, f"not a status update: {fields}"[:2000])
            return
        data = json.loads(update.model_dump_json())
        inserted = await conn.fetchval(
            """INSERT INTO hospital_updates (hospital_id, referral_id, sequence, case_id,
                   status, business_status, reason_code, occurred_at, data, event_id)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
               ON CONFLICT (hospital_id, referral_id, sequence) DO NOTHING
               RETURNING true""",
            hospital_id,
            update.referral_id,
            update.sequence,
            update.case_id,
            update.status.value,
            update.business_status,
            update.reason_code,
            update.occurred_at,
            data,
            record.event_id,
        )
        if not inserted:
            log.info(
                "repeated update dropped",
                hospital_id=hospital_id,
                referral_id=update.referral_id,
                sequence=update.sequence,
            )


async def _unreadable(conn: asyncpg.Connection, record: Record, error: str) -> None:
    log.warning(
        "unreadable record on an updates topic",
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        error=error,
    )
    await conn.execute(
        """INSERT INTO hospital_unreadable_updates (topic, partition, "offset", error)
           VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING""",
        record.topic,
        record.partition,
        record.offset,
        error,
    )


def _stored(row: asyncpg.Record) -> StoredUpdate:
    return StoredUpdate(
        referral_id=row["referral_id"],
        sequence=row["sequence"],
        status=row["status"],
        business_status=row["business_status"],
        reason_code=row["reason_code"],
        occurred_at=row["occurred_at"],
        data=row["data"],
    )


async def referral_updates(
    conn: asyncpg.Connection, hospital_id: str, referral_id: str
) -> list[StoredUpdate]:
    """One referral's stored updates, by sequence (`timeline.ordered` shows the gaps)."""
    rows = await conn.fetch(
        """SELECT referral_id, sequence, status, business_status, reason_code, occurred_at, data
           FROM hospital_updates WHERE hospital_id = $1 AND referral_id = $2
           ORDER BY sequence""",
        hospital_id,
        referral_id,
    )
    return [_stored(r) for r in rows]


async def latest_updates(
    conn: asyncpg.Connection, hospital_id: str, referral_ids: Sequence[str]
) -> dict[str, StoredUpdate]:
    """The highest-sequence update of each of these referrals (those with any)."""
    rows = await conn.fetch(
        """SELECT DISTINCT ON (referral_id)
                  referral_id, sequence, status, business_status, reason_code, occurred_at, data
           FROM hospital_updates WHERE hospital_id = $1 AND referral_id = ANY($2::text[])
           ORDER BY referral_id, sequence DESC""",
        hospital_id,
        list(referral_ids),
    )
    return {r["referral_id"]: _stored(r) for r in rows}


async def unreadable_count(conn: asyncpg.Connection) -> int:
    count: int = await conn.fetchval("SELECT count(*) FROM hospital_unreadable_updates")
    return count
