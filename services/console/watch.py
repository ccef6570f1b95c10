"""Notices that a centre's queue changed, for the pages' live refresh.

One watcher per console process asks referral and scheduling, every couple of
seconds, for a fingerprint of the live queue (open and claimed tasks) of every
centre somebody is watching (`GET /v1/queue/fingerprint`: one indexed query in
the service, 32 characters on the wire). When a centre's fingerprints differ
from the last look, its version goes up and every waiting stream of that
centre wakes. The cost is two small calls per watched centre per interval,
whatever the number of open pages; no table of a service is read here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator

from services.console.clients import OnBehalfOf, Services, gather_all
from services.console.errors import ConsoleError
from services.lib.runtime.logging import get_logger

log = get_logger(__name__)
# Who the watcher's reads are for, in the services' logs: the console itself, not a person.
WATCHER = "console-queue-watch"


class QueueWatch:
    def __init__(self, services: Services, *, interval_s: float) -> None:
        self._services = services
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
                with contextlib.suppress(ConsoleError):
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
                except ConsoleError as exc:
                    # The pages' polling fallback still works; the next look tries again.
                    log.warning("queue watch could not reach a service", error=exc.message)
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
        who = OnBehalfOf(username=WATCHER, centre_id=centre_id, role="coordinator")
        answers = await gather_all(
            self._services.referral.get("/v1/queue/fingerprint", who),
            self._services.scheduling.get("/v1/queue/fingerprint", who),
        )
        return "/".join(str(answer["fingerprint"]) for answer in answers)
