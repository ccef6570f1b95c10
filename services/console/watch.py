"""Notices that a centre's queue changed, for the pages' live refresh.

One watcher per console process looks at the live tasks (open and claimed) of
every centre somebody is watching, in both task databases, every couple of
seconds; when a centre's queue differs from the last look, its version goes
up and every waiting stream of that centre wakes. Polling keeps the services
untouched (they would otherwise need to NOTIFY for the console) and costs two
small indexed queries per watched centre per interval, whatever the number of
open pages.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg

from services.console.desk import SERVICES, Pools
from services.lib.runtime.logging import get_logger
from services.lib.tasks import operations as tasks

log = get_logger(__name__)


class QueueWatch:
    def __init__(self, pools: Pools, *, interval_s: float) -> None:
        self._pools = pools
        self._interval = interval_s
        self._watchers: Counter[str] = Counter()
        self._prints: dict[str, str] = {}
        self._versions: Counter[str] = Counter()
        self._changed = asyncio.Condition()
        self.closed = False

    @contextlib.asynccontextmanager
    async def watching(self, centre_id: str) -> AsyncIterator[None]:
        self._watchers[centre_id] += 1
        try:
            if centre_id not in self._prints:
                with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    self._prints[centre_id] = await self._fingerprint(centre_id)
            yield
        finally:
            self._watchers[centre_id] -= 1
            if self._watchers[centre_id] <= 0:
                del self._watchers[centre_id]
                self._prints.pop(centre_id, None)

    def version(self, centre_id: str) -> int:
        return self._versions[centre_id]

    async def wait(self, centre_id: str, seen: int, *, timeout: float) -> int:
        """The centre's version once it differs from `seen`, or after `timeout`."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._changed.wait_for(
                        lambda: self.closed or self._versions[centre_id] != seen
                    ),
                    timeout,
                )
        return self._versions[centre_id]

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    await self.poll()
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    log.warning("queue watch could not reach a database", error=type(exc).__name__)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._interval)
        finally:
            self.closed = True
            async with self._changed:
                self._changed.notify_all()

    async def poll(self) -> None:
        changed = False
        for centre_id in list(self._watchers):
            fingerprint = await self._fingerprint(centre_id)
            before = self._prints.get(centre_id)
            if centre_id in self._watchers:
                self._prints[centre_id] = fingerprint
            if before is not None and before != fingerprint:
                self._versions[centre_id] += 1
                changed = True
        if changed:
            async with self._changed:
                self._changed.notify_all()

    async def _fingerprint(self, centre_id: str) -> str:
        digest = hashlib.sha256()
        now = datetime.now(UTC)
        for service in SERVICES:
            async with self._pools.of(service).acquire() as conn:
                live = await tasks.queue(conn, centre_id, now=now, limit=10_000)
            for t in live:
                digest.update(
                    f"{service}/{t.id}/{t.status}/{t.claimed_by}/{t.due_at.isoformat()}/"
                    f"{t.attempts}/{t.priority}\n".encode()
                )
        return digest.hexdigest()
