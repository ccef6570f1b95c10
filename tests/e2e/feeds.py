"""The hospital's side of the contract, checked on what an end-to-end test read: each
referral's updates keep the FHIR Task table of the contract (contracts/fhir_task.py,
the table the outcome service applies), with sequences 1..n, reason codes where a
status needs one and `reason_ko` wherever there is a `reason`.

`assert_feed_legal` is for a test's own referrals; `FeedWatch` (tests/e2e/conftest.py)
checks every feed any test's reader saw, so no test that reads updates can skip it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from contracts.fhir_task import check_updates, path_text
from services.tools.simulators.hospital_io import Update


def _data(updates: Iterable[Update | Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [u.data if isinstance(u, Update) else u for u in updates]


def feed_problems(updates: Sequence[Update | Mapping[str, Any]]) -> list[str]:
    return check_updates(_data(updates))


def assert_feed_legal(updates: Sequence[Update | Mapping[str, Any]]) -> None:
    """One referral's updates, as read: a legal, gap-free feed of the contract."""
    data = _data(updates)
    assert data, "no updates to check"
    problems = check_updates(data)
    assert not problems, f"{path_text(sorted(data, key=lambda u: u['sequence']))}: {problems}"


class FeedWatch:
    """Every update the readers of one test read, per topic and referral."""

    def __init__(self) -> None:
        self.feeds: dict[tuple[str, str], list[Update]] = defaultdict(list)

    def saw(self, topic: str, updates: Iterable[Update]) -> None:
        for update in updates:
            self.feeds[(topic, update.referral_id)].append(update)

    def problems(self) -> list[str]:
        """Problems of every feed read from its first update on (readers start at the
        beginning, so a feed read in part is a prefix, which must be legal too)."""
        found = []
        for (topic, referral_id), updates in sorted(self.feeds.items()):
            if not any(u.data.get("sequence") == 1 for u in updates):
                continue  # only its tail was read: nothing to anchor the sequences on
            for problem in feed_problems(updates):
                data = sorted(_data(updates), key=lambda u: u["sequence"])
                found.append(f"{topic} {referral_id}: {problem} ({path_text(data)})")
        return found
