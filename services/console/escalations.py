"""The console follows `care.escalations` (issue 10): each task a deadline watcher
escalates (contracts.escalations.TaskOverdue) is kept in memory for its centre and
pushed to the centre's signed-in leads (services/console/overdue.py).

Its own consumer group (`<prefix>carelink-console-escalations`), offsets committed as
it reads: a push is a nudge, not the record. What is overdue is always read from the
task services (the durable view), so a push lost to a restart loses nothing; an
escalation older than `MAX_AGE` (history read by a new group) is not pushed.

No personal data: an escalation carries ids, the task kind, priority and times.
Started only when `CARELINK_CONSOLE_FOLLOW_ESCALATIONS` is on (the broker is named by
the usual CARELINK_KAFKA_* settings); off, the overdue view still works, without
live pushes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI
from pydantic import ValidationError

from contracts.escalations import TaskOverdue
from contracts.topics import ESCALATIONS
from services.lib.runtime.kafka import client_options
from services.lib.runtime.logging import get_logger
from services.lib.runtime.settings import KafkaSettings

log = get_logger(__name__)
MAX_AGE = timedelta(hours=24)
# Per centre: the most recent escalations a lead who just connected may still be told of.
KEPT = 200
GROUP = "carelink-console-escalations"


class Escalations:
    """Recent escalations per centre, with a version each waiting stream compares."""

    def __init__(self) -> None:
        self._items: dict[str, deque[tuple[int, dict[str, Any]]]] = {}
        self._versions: dict[str, int] = {}
        self._changed = asyncio.Condition()
        self.following = False

    def version(self, centre_id: str) -> int:
        return self._versions.get(centre_id, 0)

    async def add(self, event: TaskOverdue, *, now: datetime | None = None) -> bool:
        """Keep one escalation; False when it is too old to push (or a repeat)."""
        now = now or datetime.now(UTC)
        if now - event.detected_at > MAX_AGE:
            return False
        kept = self._items.setdefault(event.centre_id, deque(maxlen=KEPT))
        key = (event.service, event.task_id)
        if any((i["service"], i["task_id"]) == key for _, i in kept):
            return False  # redelivered
        async with self._changed:
            version = self.version(event.centre_id) + 1
            self._versions[event.centre_id] = version
            kept.append((version, _summary(event)))
            self._changed.notify_all()
        return True

    def since(self, centre_id: str, version: int) -> list[dict[str, Any]]:
        return [item for v, item in self._items.get(centre_id, ()) if v > version]

    async def wait(self, centre_id: str, seen: int, *, timeout: float) -> int:
        """The centre's version once it differs from `seen`, or `seen` after `timeout`."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self.version(centre_id) != seen), timeout
                )
        return self.version(centre_id)


def _summary(event: TaskOverdue) -> dict[str, Any]:
    return {
        "service": event.service,
        "task_id": event.task_id,
        "case_id": event.case_id,
        "kind": event.kind,
        "priority": event.priority,
        "due_at": event.due_at.isoformat(),
        "detected_at": event.detected_at.isoformat(),
    }


def escalations_of(app: FastAPI) -> Escalations:
    feed: Escalations | None = getattr(app.state, "escalations", None)
    if feed is None:
        feed = app.state.escalations = Escalations()
    return feed


def read(value: bytes | None) -> TaskOverdue | None:
    """One record's TaskOverdue; None (logged, no value) when it is not one."""
    try:
        return TaskOverdue.model_validate_json(value or b"")
    except ValidationError:
        log.warning("a care.escalations record is not a TaskOverdue: skipped")
        return None


async def follow(
    feed: Escalations, kafka: KafkaSettings, stop: asyncio.Event, *, group_prefix: str = ""
) -> None:
    """Read care.escalations into `feed` until `stop`; a broker that is away is tried
    again with backoff (the console goes on serving meanwhile)."""
    failures = 0
    while not stop.is_set():
        consumer = AIOKafkaConsumer(
            ESCALATIONS,
            **client_options(kafka),
            group_id=group_prefix + GROUP,
            client_id="carelink-console",
            auto_offset_reset="earliest",
            enable_auto_commit=True,
            session_timeout_ms=kafka.session_timeout_ms,
            heartbeat_interval_ms=kafka.heartbeat_interval_ms,
        )
        try:
            await consumer.start()
            feed.following = True
            log.info("following care.escalations")
            failures = 0
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=500, max_records=500)
                for records in batches.values():
                    for record in records:
                        event = read(record.value)
                        if event is not None:
                            await feed.add(event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failures += 1
            log.warning(
                "following care.escalations failed, will retry",
                error=type(exc).__name__,
                failures_in_a_row=failures,
            )
        finally:
            feed.following = False
            with contextlib.suppress(Exception):
                await consumer.stop()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=min(30.0, 0.5 * 2**failures))
