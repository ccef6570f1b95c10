"""The gateway's SQL: Tasks, tokens, subscriptions and notifications (migrations/)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

import asyncpg

from services.fhirgateway import codes
from services.fhirgateway.mapping import TaskState

_TASK_COLUMNS = (
    "id, hospital_id, referral_id, identifier_system, services, priority, authored_on,"
    " expected_discharge_date, do_not_contact, care_precautions_sha256, last_updated, version,"
    " discharged_at, cancel_requested, status, business_status, reason_code, reason, reason_ko,"
    " sequence, case_id, centre_id, outcome_report, completed_at"
)
_FIELDS = [name.strip() for name in _TASK_COLUMNS.split(",")]


def _state(row: asyncpg.Record) -> TaskState:
    values = dict(row)
    values["services"] = tuple(values["services"])
    report = values["outcome_report"]
    values["outcome_report"] = json.loads(report) if isinstance(report, str) else report
    return TaskState(**{name: values[name] for name in _FIELDS})


def _values(state: TaskState) -> list[Any]:
    values = asdict(state)
    values["services"] = list(state.services)
    # The pool's jsonb codec encodes it (services.lib.runtime.db.init_connection).
    values["outcome_report"] = dict(state.outcome_report) if state.outcome_report else None
    return [values[name] for name in _FIELDS]


async def insert_task(conn: asyncpg.Connection, state: TaskState, fingerprint: str) -> bool:
    """Insert a new Task; False when the hospital already has one with this referral id."""
    placeholders = ", ".join(f"${i}" for i in range(1, len(_FIELDS) + 2))
    done = await conn.fetchval(
        f"INSERT INTO tasks ({_TASK_COLUMNS}, fingerprint) VALUES ({placeholders})"
        " ON CONFLICT (hospital_id, referral_id) DO NOTHING RETURNING true",
        *_values(state),
        fingerprint,
    )
    return bool(done)


async def save_task(conn: asyncpg.Connection, state: TaskState, *, gap: bool = False) -> None:
    assignments = ", ".join(
        f"{name} = ${i}" for i, name in enumerate(_FIELDS, start=1) if name != "id"
    )
    await conn.execute(
        f"UPDATE tasks SET {assignments}, gaps = gaps + ${len(_FIELDS) + 1}::int WHERE id = $1",
        *_values(state),
        1 if gap else 0,
    )


async def task(
    conn: asyncpg.Connection, hospital_id: str, task_id: str, *, lock: bool = False
) -> TaskState | None:
    """The hospital's Task, or None (another hospital's Task does not exist for it)."""
    row = await conn.fetchrow(
        f"SELECT {_TASK_COLUMNS} FROM tasks WHERE id = $1 AND hospital_id = $2"
        + (" FOR UPDATE" if lock else ""),
        task_id,
        hospital_id,
    )
    return _state(row) if row is not None else None


async def task_by_referral(
    conn: asyncpg.Connection, hospital_id: str, referral_id: str, *, lock: bool = False
) -> tuple[TaskState, str] | None:
    row = await conn.fetchrow(
        f"SELECT {_TASK_COLUMNS}, fingerprint FROM tasks WHERE hospital_id = $1 AND referral_id = $2"
        + (" FOR UPDATE" if lock else ""),
        hospital_id,
        referral_id,
    )
    return (_state(row), row["fingerprint"]) if row is not None else None


async def search_tasks(
    conn: asyncpg.Connection,
    hospital_id: str,
    *,
    identifier_system: str | None,
    identifier_value: str | None,
    statuses: Sequence[str],
    updated_after: datetime | None,
    updated_before: datetime | None,
    limit: int,
) -> list[TaskState]:
    clauses = ["hospital_id = $1"]
    args: list[Any] = [hospital_id]

    def add(clause: str, value: Any) -> None:
        args.append(value)
        clauses.append(clause.format(f"${len(args)}"))

    if identifier_value is not None:
        # carelink's case id is an identifier of the Task too.
        add("(referral_id = {0} OR case_id = {0})", identifier_value)
    if identifier_system is not None:
        # The case id's system matches every Task; the hospital's system its own.
        add(f"(identifier_system = {{0}} OR {{0}} = '{codes.CASE_SYSTEM}')", identifier_system)
    if statuses:
        add("status = ANY({0}::text[])", list(statuses))
    if updated_after is not None:
        add("last_updated >= {0}", updated_after)
    if updated_before is not None:
        add("last_updated < {0}", updated_before)
    args.append(limit)
    rows = await conn.fetch(
        f"SELECT {_TASK_COLUMNS} FROM tasks WHERE {' AND '.join(clauses)}"
        f" ORDER BY last_updated, id LIMIT ${len(args)}",
        *args,
    )
    return [_state(row) for row in rows]


# --- tokens ---------------------------------------------------------------------------


async def use_assertion(
    conn: asyncpg.Connection, client_id: str, jti: str, expires_at: datetime
) -> bool:
    """Record a client assertion's jti; False when it was used before (a replay)."""
    await conn.execute("DELETE FROM used_assertions WHERE expires_at < now() - interval '1 hour'")
    done = await conn.fetchval(
        "INSERT INTO used_assertions (client_id, jti, expires_at) VALUES ($1, $2, $3)"
        " ON CONFLICT DO NOTHING RETURNING true",
        client_id,
        jti,
        expires_at,
    )
    return bool(done)


async def save_token(
    conn: asyncpg.Connection,
    token_sha256: str,
    client_id: str,
    hospital_id: str,
    scope: str,
    expires_at: datetime,
) -> None:
    await conn.execute("DELETE FROM access_tokens WHERE expires_at < now()")
    await conn.execute(
        "INSERT INTO access_tokens (token_sha256, client_id, hospital_id, scope, expires_at)"
        " VALUES ($1, $2, $3, $4, $5)",
        token_sha256,
        client_id,
        hospital_id,
        scope,
        expires_at,
    )


async def token(conn: asyncpg.Connection, token_sha256: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT client_id, hospital_id, scope FROM access_tokens"
        " WHERE token_sha256 = $1 AND expires_at > now()",
        token_sha256,
    )
    return row


# --- subscriptions and notifications --------------------------------------------------


async def insert_subscription(
    conn: asyncpg.Connection, sub_id: str, hospital_id: str, endpoint: str, headers: Sequence[str]
) -> None:
    await conn.execute(
        "INSERT INTO subscriptions (id, hospital_id, endpoint, headers, status)"
        " VALUES ($1, $2, $3, $4, 'active')",
        sub_id,
        hospital_id,
        endpoint,
        list(headers),
    )


async def subscription(
    conn: asyncpg.Connection, hospital_id: str, sub_id: str
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT id, hospital_id, endpoint, status, events, last_error FROM subscriptions"
        " WHERE id = $1 AND hospital_id = $2",
        sub_id,
        hospital_id,
    )
    return row


async def switch_off(conn: asyncpg.Connection, hospital_id: str, sub_id: str) -> bool:
    done = await conn.fetchval(
        "UPDATE subscriptions SET status = 'off' WHERE id = $1 AND hospital_id = $2 RETURNING true",
        sub_id,
        hospital_id,
    )
    return bool(done)


async def notify_subscribers(conn: asyncpg.Connection, hospital_id: str, task_id: str) -> int:
    """One notification per active subscription of the hospital (in the update's
    transaction: a Task change is never committed without its notifications)."""
    rows = await conn.fetch(
        "UPDATE subscriptions SET events = events + 1 WHERE hospital_id = $1 AND status = 'active'"
        " RETURNING id, events",
        hospital_id,
    )
    if rows:
        await conn.executemany(
            "INSERT INTO notifications (subscription_id, task_id, event_number) VALUES ($1, $2, $3)",
            [(row["id"], task_id, row["events"]) for row in rows],
        )
    return len(rows)


async def due_notifications(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    """Claims due notifications (SKIP LOCKED: several instances share the work)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT n.id, n.subscription_id, n.task_id, n.event_number, n.attempts, s.endpoint,"
        " s.headers, s.hospital_id"
        " FROM notifications n JOIN subscriptions s ON s.id = n.subscription_id"
        " WHERE n.delivered_at IS NULL AND n.failed_at IS NULL AND n.next_attempt_at <= now()"
        " AND s.status = 'active'"
        " ORDER BY n.id LIMIT $1 FOR UPDATE OF n SKIP LOCKED",
        limit,
    )
    return rows


async def delivered(conn: asyncpg.Connection, notification_id: int) -> None:
    await conn.execute(
        "UPDATE notifications SET delivered_at = now(), attempts = attempts + 1 WHERE id = $1",
        notification_id,
    )


async def retry_later(
    conn: asyncpg.Connection, notification_id: int, delay_s: float, error: str, *, give_up: bool
) -> None:
    if give_up:
        await conn.execute(
            "UPDATE notifications SET failed_at = now(), attempts = attempts + 1, last_error = $2"
            " WHERE id = $1",
            notification_id,
            error[:500],
        )
        await conn.execute(
            "UPDATE subscriptions SET status = 'error', last_error = $2"
            " WHERE id = (SELECT subscription_id FROM notifications WHERE id = $1)",
            notification_id,
            error[:500],
        )
        return
    await conn.execute(
        "UPDATE notifications SET attempts = attempts + 1, last_error = $2,"
        " next_attempt_at = now() + make_interval(secs => $3) WHERE id = $1",
        notification_id,
        error[:500],
        delay_s,
    )
