"""Prometheus metrics every service exposes on its health port at /metrics.

Labels carry only service, consumer, topic and outcome names: never ids or
payload values, so no personal data can reach a metrics backend.
"""

from __future__ import annotations

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
