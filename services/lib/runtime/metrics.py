"""Prometheus metrics every service exposes on its health port at /metrics.

Labels carry only service, consumer, topic, outcome, check, task kind and priority
names: never ids or payload values, so no personal data can reach a metrics backend
(tests/contract/test_observability.py checks the label names).

Most are counted where the work happens; the outbox gauges are read from the database
at scrape time (`sample_outbox`, run by the health app's /metrics), so they are right
even when the relay that would update them is stuck or on standby.
"""

from __future__ import annotations

import asyncpg
from prometheus_client import Counter, Gauge, Histogram

MESSAGES = Counter(
    "carelink_messages_total",
    "Records handled by a consumer, by outcome (handled, duplicate, dead-lettered, retried)",
    ["service", "consumer", "outcome"],
)
HANDLER_SECONDS = Histogram(
    "carelink_handler_seconds",
    "Time to handle one record, database transaction included",
    ["service", "consumer"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
DEAD_LETTERS = Counter(
    "carelink_dead_letters_total",
    "Records sent to a dead-letter topic",
    ["service", "source_topic"],
)
OUTBOX_BACKLOG = Gauge(
    "carelink_outbox_backlog",
    "Outbox rows not yet acknowledged by the broker",
    ["service"],
)
OUTBOX_PUBLISHED = Counter(
    "carelink_outbox_published_total",
    "Outbox rows published and acknowledged by the broker",
    ["service"],
)
OUTBOX_FAILED = Counter(
    "carelink_outbox_failed_total",
    "Outbox rows the broker refused for good (set aside with the reason)",
    ["service"],
)
OUTBOX_OLDEST_AGE = Gauge(
    "carelink_outbox_oldest_age_seconds",
    "Age of the oldest outbox row not yet published (0 when there is none), from the database"
    " at scrape time",
    ["service"],
)
OUTBOX_SET_ASIDE = Gauge(
    "carelink_outbox_set_aside",
    "Outbox rows the relay gave up on, waiting for `carelink outbox requeue`, from the database"
    " at scrape time",
    ["service"],
)
READY = Gauge(
    "carelink_ready",
    "1 when the readiness check passes, 0 when not; measured at every scrape and probe",
    ["service", "check"],
)
ESCALATED = Counter(
    "carelink_escalations_total",
    "Overdue tasks escalated on care.escalations, by task kind",
    ["service", "kind"],
)
TASKS_OVERDUE = Gauge(
    "carelink_tasks_overdue",
    "Open or claimed tasks past their due time, at the deadline watcher's last scan",
    ["service", "priority"],
)
RETENTION_DELETED = Counter(
    "carelink_retention_deleted_total",
    "Expired rows the retention job deleted, by kind of row (outbox: published rows past"
    " CARELINK_OUTBOX_RETENTION_HOURS; inbox: event ids past CARELINK_INBOX_RETENTION_DAYS)",
    ["service", "kind"],
)
ILLEGAL_STATUS_MOVES = Counter(
    "carelink_illegal_status_moves_total",
    "Hospital updates the outcome service refused to send because the move breaks the FHIR"
    " Task state machine of the hospital contract (must stay 0: a producer or the table is"
    " wrong), by the statuses of the move",
    ["service", "from_status", "to_status"],
)

# One pass over the unpublished rows (the partial index outbox_unpublished) and one over
# the set-aside ones (outbox_set_aside, normally empty): never a scan of published rows.
OUTBOX_SQL = """SELECT
    (SELECT count(*) FROM outbox WHERE published_at IS NULL AND failed_at IS NULL) AS backlog,
    (SELECT extract(epoch FROM now() - min(created_at))::float8 FROM outbox
      WHERE published_at IS NULL AND failed_at IS NULL) AS oldest_age_s,
    (SELECT count(*) FROM outbox WHERE published_at IS NULL AND failed_at IS NOT NULL)
      AS set_aside"""


async def sample_outbox(conn: asyncpg.Connection, service: str) -> None:
    """Set the outbox gauges from the database: every instance reports the same truth,
    whether its relay is the active one, a standby, or stuck on an unreachable broker."""
    row = await conn.fetchrow(OUTBOX_SQL)
    if row is None:  # pragma: no cover - a SELECT without FROM always returns one row
        return
    OUTBOX_BACKLOG.labels(service).set(row["backlog"])
    OUTBOX_OLDEST_AGE.labels(service).set(max(0.0, row["oldest_age_s"] or 0.0))
    OUTBOX_SET_ASIDE.labels(service).set(row["set_aside"])
