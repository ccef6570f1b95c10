"""End-to-end fixtures: every hospital feed a test reads is checked against the
contract's FHIR Task table when the test ends (tests/e2e/feeds.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.tools.simulators.hospital_io import Update, UpdatesReader
from tests.e2e.feeds import FeedWatch


@pytest.fixture(autouse=True)
def every_feed_read_is_legal(monkeypatch: pytest.MonkeyPatch) -> Iterator[FeedWatch]:
    """Watches what every UpdatesReader of the test reads (simulators' included) and
    fails the test if any referral's feed breaks the table, gaps or lacks a reason."""
    watch = FeedWatch()
    poll = UpdatesReader.poll

    async def watched_poll(self: UpdatesReader, timeout_ms: int = 200) -> list[Update]:
        fresh = await poll(self, timeout_ms)
        watch.saw(self.topic, fresh)
        return fresh

    monkeypatch.setattr(UpdatesReader, "poll", watched_poll)
    yield watch
    problems = watch.problems()
    if problems:
        pytest.fail("hospital feeds break the contract:\n" + "\n".join(problems[:20]))
