"""Destroying personal data (PIPA art. 21): one case at once, or every case due.

`destroy_case` runs in the caller's transaction: it clears the personal fields of
`privacy.PERSONAL_FIELDS` for the case, marks the case, records the destruction in
`personal_data_destructions` (case, reason, which fields: never a value) and emits
`PersonalDataDestroyed` (ids only) through the outbox, so the services that keep
free text about the case (scheduling's visit notes, referral's correction notes)
delete theirs. Intake calls it when a cancellation withdraws consent, whoever
cancelled (usecases.apply_update), and the scheduled job below for every closed
case whose retention period ended.

A follow-up the hospital sends after the destruction is stored without its data
(a trigger of migration 0007), so nothing personal comes back in by that door.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from contracts.intake import PersonalDataDestroyed
from services.intake import privacy
from services.intake.settings import IntakeSettings
from services.lib.policy import PolicyBook
from services.lib.runtime.errors import describe, is_transient
from services.lib.runtime.events import emit
from services.lib.runtime.logging import get_logger
from services.lib.runtime.retention import backoff_delay
from services.lib.runtime.service import ServiceContext

log = get_logger(__name__)
SERVICE = "intake"
# Candidates read per query while looking for due cases.
_PAGE = 500

# Each statement clears one field for the case and says whether it held anything.
_CLEAR: dict[str, str] = {
    "referrals.submission": """UPDATE referrals SET submission = NULL
                               WHERE case_id = $1 AND submission IS NOT NULL""",
    "referrals.content_hash": """UPDATE referrals SET content_hash = NULL
                                 WHERE case_id = $1 AND content_hash IS NOT NULL""",
    "referral_events.data": """UPDATE referral_events SET data = '{}'::jsonb
                               WHERE case_id = $1 AND data <> '{}'::jsonb""",
    "case_exits.note": """UPDATE case_exits SET note = NULL
                          WHERE case_id = $1 AND note IS NOT NULL""",
    # The person's matching key goes once no other case of theirs keeps personal data;
    # the opaque person id stays on the cases (pseudonymous).
    "persons.patient_key": """DELETE FROM persons p
                              USING cases c
                              WHERE c.case_id = $1 AND p.person_id = c.person_id
                                AND NOT EXISTS (
                                    SELECT 1 FROM cases o
                                    WHERE o.person_id = p.person_id AND o.case_id <> $1
                                      AND o.personal_data_destroyed_at IS NULL)""",
}


@dataclass(frozen=True)
class Destroyed:
    case_id: str
    reason: privacy.Reason
    # The fields that held something for this case (names only).
    fields: tuple[str, ...]


@dataclass(frozen=True)
class DueCase:
    case_id: str
    closed_at: datetime
    due_at: datetime


async def destroy_case(
    conn: asyncpg.Connection,
    case_id: str,
    *,
    reason: privacy.Reason,
    now: datetime | None = None,
) -> Destroyed | None:
    """Destroys the case's personal data in the caller's transaction; None when the
    case does not exist or was destroyed already (a repeat changes nothing)."""
    now = now or datetime.now(UTC)
    row = await conn.fetchrow(
        """SELECT c.personal_data_destroyed_at, r.hospital_id, r.referral_id
           FROM cases c
           LEFT JOIN LATERAL (SELECT hospital_id, referral_id FROM referrals
                              WHERE case_id = c.case_id ORDER BY received_at LIMIT 1) r ON true
           WHERE c.case_id = $1
           FOR UPDATE OF c""",
        case_id,
    )
    if row is None or row["personal_data_destroyed_at"] is not None:
        return None
    fields = []
    for field, statement in _CLEAR.items():
        status: str = await conn.execute(statement, case_id)
        if int(status.rsplit(" ", 1)[-1]):
            fields.append(field)
    await conn.execute(
        "UPDATE cases SET personal_data_destroyed_at = $2 WHERE case_id = $1", case_id, now
    )
    await conn.execute(
        """INSERT INTO personal_data_destructions (case_id, reason, fields, destroyed_at)
           VALUES ($1, $2, $3, $4)""",
        case_id,
        reason,
        fields,
        now,
    )
    if row["hospital_id"] is not None:
        await emit(
            conn,
            PersonalDataDestroyed(
                case_id=case_id,
                hospital_id=row["hospital_id"],
                referral_id=row["referral_id"],
                occurred_at=now,
                reason=reason,
            ),
            service=SERVICE,
        )
    log.info("personal data destroyed", case_id=case_id, reason=reason, fields=fields)
    return Destroyed(case_id, reason, tuple(fields))


async def due_cases(
    conn: asyncpg.Connection, policies: PolicyBook, now: datetime, *, limit: int
) -> list[DueCase]:
    """Closed cases whose retention period ended and whose data is still here, oldest
    closure first, at most `limit`."""
    shortest = min(p.personal_data_retention_years for p in policies.policies)
    cutoff = privacy.add_years(now, -shortest)  # no case closed after this can be due
    found: list[DueCase] = []
    after: tuple[datetime, str] | None = None
    while len(found) < limit:
        rows = await conn.fetch(
            """SELECT case_id, closed_at FROM cases
               WHERE NOT open AND personal_data_destroyed_at IS NULL AND closed_at <= $1
                 AND ($2::timestamptz IS NULL OR (closed_at, case_id) > ($2, $3))
               ORDER BY closed_at, case_id LIMIT $4""",
            cutoff,
            after[0] if after else None,
            after[1] if after else "",
            _PAGE,
        )
        for row in rows:
            due_at = privacy.destruction_due_at(row["closed_at"], policies)
            if due_at <= now:
                found.append(DueCase(row["case_id"], row["closed_at"], due_at))
        if len(rows) < _PAGE:
            break
        after = (rows[-1]["closed_at"], rows[-1]["case_id"])
    return found[:limit]


async def destroy_due(
    pool: asyncpg.Pool,
    policies: PolicyBook,
    *,
    now: datetime | None = None,
    limit: int = 200,
    stop: asyncio.Event | None = None,
) -> list[Destroyed]:
    """One run: destroys up to `limit` due cases, each in its own short transaction
    (checked again under the case's lock: a case reopened or destroyed meanwhile is
    left alone)."""
    now = now or datetime.now(UTC)
    async with pool.acquire() as conn:
        due = await due_cases(conn, policies, now, limit=limit)
    done: list[Destroyed] = []
    for case in due:
        if stop is not None and stop.is_set():
            break
        async with pool.acquire() as conn, conn.transaction():
            still = await conn.fetchval(
                """SELECT closed_at FROM cases WHERE case_id = $1 AND NOT open
                   AND personal_data_destroyed_at IS NULL FOR UPDATE""",
                case.case_id,
            )
            if still is None or not privacy.is_due(still, policies, now):
                continue
            destroyed = await destroy_case(
                conn, case.case_id, reason=privacy.RETENTION_EXPIRED, now=now
            )
        if destroyed is not None:
            done.append(destroyed)
    if done:
        log.info("retention ended: personal data destroyed", cases=len(done))
    return done


async def run_schedule(context: ServiceContext[IntakeSettings], stop: asyncio.Event) -> None:
    """The scheduled job: `destroy_due` every `personal_data_destruction_interval_s`
    until `stop`; no error ends it (a failed run is logged and tried again later)."""
    interval = context.settings.personal_data_destruction_interval_s
    failures = 0
    while not stop.is_set():
        try:
            await destroy_due(
                context.pool,
                context.policies,
                limit=context.settings.personal_data_destruction_batch,
                stop=stop,
            )
        except Exception as exc:
            failures += 1
            delay = backoff_delay(failures, interval_s=interval, max_s=max(interval, 3600.0))
            level = log.warning if is_transient(exc) else log.error
            level(
                "personal data destruction run failed, will retry",
                error=describe(exc),
                failures_in_a_row=failures,
                retry_in_s=round(delay, 2),
            )
        else:
            failures = 0
            delay = interval
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
