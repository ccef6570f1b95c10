"""A referral's updates as a hospital shows them: in sequence order, with every gap
(sequences not received yet) explicit. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class StoredUpdate:
    """One `carelink.referral.status-changed.v1` as the gateway stored it."""

    referral_id: str
    sequence: int
    status: str
    business_status: str
    reason_code: str | None
    occurred_at: datetime
    data: dict[str, Any]

    @property
    def details(self) -> dict[str, Any]:
        details = self.data.get("details")
        return details if isinstance(details, dict) else {}


@dataclass(frozen=True)
class Gap:
    """Sequences `first`..`last` (inclusive) were not received (yet)."""

    first: int
    last: int

    @property
    def count(self) -> int:
        return self.last - self.first + 1


def ordered(updates: Iterable[StoredUpdate]) -> list[StoredUpdate | Gap]:
    """The updates by sequence, a `Gap` wherever sequences are missing (from 1 on:
    the contract numbers every referral's updates 1, 2, 3 … with no gaps, so a missing
    one is still on its way, or was lost)."""
    items: list[StoredUpdate | Gap] = []
    expected = 1
    for update in sorted(updates, key=lambda u: u.sequence):
        if update.sequence < expected:
            continue  # a repeat: the first copy stands
        if update.sequence > expected:
            items.append(Gap(expected, update.sequence - 1))
        items.append(update)
        expected = update.sequence + 1
    return items


def gaps(updates: Iterable[StoredUpdate]) -> list[Gap]:
    return [item for item in ordered(updates) if isinstance(item, Gap)]


def latest(updates: Sequence[StoredUpdate]) -> StoredUpdate | None:
    """The update with the highest sequence: the referral's current status as far as
    the hospital knows (later sequences supersede earlier ones even across a gap)."""
    return max(updates, key=lambda u: u.sequence, default=None)
