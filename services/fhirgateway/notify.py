"""Subscription notifications (R4 Subscriptions Backport, rest-hook, id-only).

A Task change writes one notification row per active subscription of its hospital,
in the change's transaction (usecases.FollowUpdates). This loop delivers them: an
HTTP POST of a `history` Bundle whose status Parameters name the Task by reference
only, never its content (so never personal data, and the EHR reads the Task with its
own token). A failed delivery is retried with exponential backoff, a bounded number
of times; then the notification is set aside and the subscription goes to `error`
(the hospital sees it on GET Subscription and can poll meanwhile).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx

from services.fhirgateway import codes, store
from services.fhirgateway.outcomes import FHIR_JSON
from services.fhirgateway.settings import FhirGatewaySettings
from services.lib.runtime import tracing
from services.lib.runtime.logging import get_logger

log = get_logger(__name__)


def subscription_status(
    base_url: str, subscription_id: str, status: str, kind: str, events: int
) -> dict[str, Any]:
    """The Backport's R4 SubscriptionStatus (a Parameters, profile
    backport-subscription-status-r4), of a notification or of `$status` (pure)."""
    return {
        "resourceType": "Parameters",
        "meta": {"profile": [codes.BACKPORT_STATUS_PROFILE]},
        "parameter": [
            {
                "name": "subscription",
                "valueReference": {"reference": f"{base_url}/Subscription/{subscription_id}"},
            },
            {"name": "topic", "valueCanonical": codes.TASK_TOPIC},
            {"name": "status", "valueCode": status},
            {"name": "type", "valueCode": kind},
            {"name": "events-since-subscription-start", "valueString": str(events)},
        ],
    }


def notification_bundle(
    base_url: str, subscription_id: str, task_id: str, event_number: int, now: datetime
) -> dict[str, Any]:
    """The id-only notification of one Task change (pure)."""
    subscription = f"{base_url}/Subscription/{subscription_id}"
    task = f"{base_url}/Task/{task_id}"
    status = subscription_status(
        base_url, subscription_id, "active", "event-notification", event_number
    )
    # id-only: the Backport puts the Task's reference in notification-event.focus.
    status["parameter"].append(
        {
            "name": "notification-event",
            "part": [
                {"name": "event-number", "valueString": str(event_number)},
                {"name": "timestamp", "valueInstant": now.isoformat()},
                {"name": "focus", "valueReference": {"reference": task}},
            ],
        }
    )
    # A urn:uuid must be a UUID: one derived from the subscription and event number, so a
    # retried delivery carries the same one.
    status_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{subscription}#{event_number}")
    return {
        "resourceType": "Bundle",
        "meta": {"profile": [codes.BACKPORT_NOTIFICATION_PROFILE]},
        "type": "history",
        "timestamp": now.isoformat(),
        "entry": [
            {
                "fullUrl": f"urn:uuid:{status_id}",
                "resource": status,
                "request": {"method": "GET", "url": f"{subscription}/$status"},
                "response": {"status": "200"},
            },
            # id-only: the Task's address, not its content.
            {
                "fullUrl": task,
                "request": {"method": "PUT", "url": f"Task/{task_id}"},
                "response": {"status": "200"},
            },
        ],
    }


def backoff(attempt: int, base_s: float, max_s: float) -> float:
    """Seconds before attempt `attempt + 1` (attempt counts from 1)."""
    return float(min(max_s, base_s * 2 ** (attempt - 1)))


def _headers(stored: list[str]) -> dict[str, str]:
    headers = {"Content-Type": FHIR_JSON}
    for line in stored:
        name, _, value = line.partition(":")
        if name.strip() and value.strip():
            headers[name.strip()] = value.strip()
    return headers


async def deliver_due(
    pool: asyncpg.Pool, client: httpx.AsyncClient, settings: FhirGatewaySettings
) -> int:
    """Deliver the notifications that are due; how many were attempted."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await store.due_notifications(conn, settings.notify_batch_size)
        for row in rows:
            body = notification_bundle(
                settings.public_base_url,
                row["subscription_id"],
                row["task_id"],
                row["event_number"],
                datetime.now(UTC),
            )
            error: str | None = None
            try:
                response = await client.post(
                    row["endpoint"], json=body, headers=_headers(row["headers"])
                )
                if not response.is_success:
                    error = f"the endpoint answered {response.status_code}"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}"
            if error is None:
                await store.delivered(conn, row["id"])
                continue
            attempt = row["attempts"] + 1
            give_up = attempt >= settings.notify_max_attempts
            await store.retry_later(
                conn,
                row["id"],
                backoff(attempt, settings.notify_base_delay_s, settings.notify_max_delay_s),
                error,
                give_up=give_up,
            )
            log.warning(
                "notification not delivered",
                subscription_id=row["subscription_id"],
                attempt=attempt,
                gave_up=give_up,
                error=error,
            )
    return len(rows)


async def run_notifier(
    pool: asyncpg.Pool, settings: FhirGatewaySettings, stop: asyncio.Event
) -> None:
    """Deliver notifications until `stop`; survives database and network trouble."""
    with tracing.untraced():
        async with httpx.AsyncClient(timeout=settings.notify_timeout_s) as client:
            while not stop.is_set():
                attempted = 0
                try:
                    attempted = await deliver_due(pool, client, settings)
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    log.warning("notifier could not reach its database", error=type(exc).__name__)
                except Exception:
                    log.exception("notifier failed, retrying")
                if attempted:
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=settings.notify_poll_interval_s)
