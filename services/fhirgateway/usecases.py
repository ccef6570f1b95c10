"""The gateway's use cases: load state, call the pure mapping, write state plus
outbox rows (or notifications) in one transaction.

Towards carelink the gateway is a hospital system like any other, through the shared
hospital-side library (services/lib/hospitalside): it publishes the contract's
hospital events on `hospital.<id>.referrals` with that hospital's own `ce_source`,
through its outbox (nothing is lost while the broker is down), and follows the
served hospitals' `hospital.<id>.updates` into its Tasks.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import structlog
from pydantic import ValidationError

from contracts.hospital_v1 import STATUS_CHANGED, StatusChanged
from services.fhirgateway import mapping, store
from services.fhirgateway.auth import (
    ASSERTION_TYPE,
    AuthError,
    Caller,
    Clients,
    grant,
    rights,
    scope_text,
    verify_assertion,
)
from services.fhirgateway.mapping import Resource, TaskState
from services.fhirgateway.outcomes import single
from services.lib.hospitalside import publishing
from services.lib.hospitalside.updates import UpdatesFollower
from services.lib.runtime.logging import get_logger
from services.lib.runtime.pipeline import Record

log = get_logger(__name__)


async def submit(
    pool: asyncpg.Pool, caller: Caller, task: Resource, refs: mapping.References, root: str
) -> tuple[TaskState, bool]:
    """A new referral from a Task: (the Task, created?). A retried POST (same content)
    answers the existing Task; another referral under the same identifier is a 409."""
    submitted = mapping.submission(task, refs, hospital_id=caller.hospital_id, root=root)
    now = datetime.now(UTC)
    state = mapping.new_state(str(uuid.uuid4()), submitted, now)
    async with pool.acquire() as conn, conn.transaction():
        if await store.insert_task(conn, state, submitted.fingerprint):
            await publishing.enqueue(conn, caller.hospital_id, submitted.event, now=now)
            log.info("fhir task created", hospital_id=caller.hospital_id, task_id=state.id)
            return state, True
        found = await store.task_by_referral(conn, caller.hospital_id, submitted.event.referral_id)
    if found is not None and found[1] == submitted.fingerprint:
        return found[0], False
    raise single(
        409,
        "duplicate",
        "a Task with this identifier exists with other content: a new referral needs a new identifier",
        f"{root}.identifier",
    )


async def update_by_hospital(
    pool: asyncpg.Pool, caller: Caller, task_id: str, task: Resource
) -> TaskState:
    """A PUT of the Task: cancel, correct, or say the patient left (mapping.hospital_changes)."""
    if task.get("id") not in (None, task_id):
        raise single(400, "invalid", "the Task's id must be the id in the URL", "Task.id")
    now = datetime.now(UTC)
    async with pool.acquire() as conn, conn.transaction():
        state = await store.task(conn, caller.hospital_id, task_id, lock=True)
        if state is None:
            raise single(404, "not-found", f"no Task/{task_id}")
        events, after = mapping.hospital_changes(task, state, now)
        if not events:
            return state
        for event in events:
            await publishing.enqueue(conn, caller.hospital_id, event, now=now)
        await store.save_task(conn, after)
        log.info(
            "fhir task updated by the hospital",
            hospital_id=caller.hospital_id,
            task_id=task_id,
            events=[type(e).__name__ for e in events],
        )
        return after


class FollowUpdates:
    """The pipeline handler of the served hospitals' `hospital.<id>.updates`: the shared
    hospital-side follower stores each update once per sequence (or notes a record that
    is not one), then the update moves its Task and every active subscription of the
    hospital gets a notification, all in the record's transaction.

    Updates of referrals the gateway did not create (a hospital that also writes Kafka
    records itself) are stored by the follower and move no Task."""

    def __init__(self, served: Iterable[str]) -> None:
        self._follower = UpdatesFollower(served)

    def wants(self, record: Record) -> bool:
        return self._follower.wants(record)

    async def __call__(self, conn: asyncpg.Connection, record: Record) -> None:
        await self._follower(conn, record)
        if record.header("ce_type") not in (None, STATUS_CHANGED):
            return
        try:
            update = StatusChanged.model_validate_json(record.value)
        except ValidationError:
            return  # noted as unreadable by the follower
        hospital_id = record.topic.split(".")[1]
        found = await store.task_by_referral(conn, hospital_id, update.referral_id, lock=True)
        if found is None:
            return
        state = found[0]
        structlog.contextvars.bind_contextvars(task_id=state.id, case_id=update.case_id)
        applied = mapping.apply_update(state, update, datetime.now(UTC))
        if not applied.changed:
            return
        if applied.gap:
            log.warning(
                "updates missing before this one", sequence=update.sequence, had=state.sequence
            )
        await store.save_task(conn, applied.state, gap=applied.gap)
        await store.notify_subscribers(conn, hospital_id, state.id)


# --- tokens ---------------------------------------------------------------------------


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def issue_token(
    pool: asyncpg.Pool,
    clients: Clients,
    form: dict[str, Any],
    *,
    token_url: str,
    lifetime_s: int,
) -> dict[str, Any]:
    """The token endpoint: client_credentials with a private_key_jwt assertion."""
    if form.get("grant_type") != "client_credentials":
        raise AuthError("unsupported_grant_type", "grant_type must be client_credentials")
    if form.get("client_assertion_type") != ASSERTION_TYPE:
        raise AuthError("invalid_request", f"client_assertion_type must be {ASSERTION_TYPE}")
    assertion = form.get("client_assertion")
    if not isinstance(assertion, str) or not assertion:
        raise AuthError("invalid_request", "client_assertion is required")
    now = datetime.now(UTC)
    checked = verify_assertion(clients, assertion, token_url=token_url, now=now)
    granted = grant(checked.client, str(form.get("scope", "")))
    token = secrets.token_urlsafe(32)
    expires_at = now + timedelta(seconds=lifetime_s)
    async with pool.acquire() as conn, conn.transaction():
        if not await store.use_assertion(
            conn, checked.client.client_id, checked.jti, checked.expires_at
        ):
            raise AuthError("invalid_client", "this client assertion (jti) was used before", 401)
        await store.save_token(
            conn,
            token_hash(token),
            checked.client.client_id,
            checked.client.hospital_id,
            scope_text(granted),
            expires_at,
        )
    log.info(
        "fhir token issued",
        client_id=checked.client.client_id,
        hospital_id=checked.client.hospital_id,
    )
    return {
        "access_token": token,
        "token_type": "bearer",
        "expires_in": lifetime_s,
        "scope": scope_text(granted),
    }


async def caller_for(pool: asyncpg.Pool, token: str) -> Caller | None:
    async with pool.acquire() as conn:
        row = await store.token(conn, token_hash(token))
    if row is None:
        return None
    return Caller(row["client_id"], row["hospital_id"], rights(row["scope"]))


# --- subscriptions --------------------------------------------------------------------


async def subscribe(
    pool: asyncpg.Pool, caller: Caller, endpoint: str, headers: Sequence[str]
) -> str:
    sub_id = str(uuid.uuid4())
    async with pool.acquire() as conn:
        await store.insert_subscription(conn, sub_id, caller.hospital_id, endpoint, headers)
    log.info("fhir subscription created", hospital_id=caller.hospital_id, subscription_id=sub_id)
    return sub_id
