"""Failed sign-ins counted per account and per address, in bounded memory.

Each key (an account's username, a client's address) has a fixed window: after
`limit` failures within `window_s` seconds of the first, further attempts are
refused until the window ends, without checking the password (so a guesser also
costs the server nothing). A successful sign-in clears the account's count, not
the address's (one address may be a whole ward behind NAT trying many accounts).

Memory is bounded: each table keeps at most `max_keys` keys, the least recently
failed dropped first. Someone flooding with fresh usernames can therefore push a
target's count out of the account table; the per-address limit still holds them.
Counts live in the process: several replicas each count their own.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

MAX_KEY_LENGTH = 200


@dataclass
class _Window:
    started: float
    failures: int


class _Counter:
    def __init__(self, limit: int, window_s: float, max_keys: int) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_keys = max_keys
        self._windows: OrderedDict[str, _Window] = OrderedDict()

    def retry_after(self, key: str, now: float) -> float | None:
        window = self._windows.get(key)
        if window is None:
            return None
        remaining = window.started + self.window_s - now
        if remaining <= 0:
            del self._windows[key]
            return None
        return remaining if window.failures >= self.limit else None

    def fail(self, key: str, now: float) -> None:
        window = self._windows.get(key)
        if window is None or window.started + self.window_s <= now:
            window = _Window(now, 0)
        window.failures += 1
        self._windows[key] = window
        self._windows.move_to_end(key)
        while len(self._windows) > self.max_keys:
            self._windows.popitem(last=False)

    def clear(self, key: str) -> None:
        self._windows.pop(key, None)

    def __len__(self) -> int:
        return len(self._windows)


class SignInThrottle:
    """`retry_after` before checking a password; `failed` or `succeeded` after."""

    def __init__(
        self,
        *,
        account_limit: int = 5,
        address_limit: int = 50,
        window_s: float = 15 * 60,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if account_limit < 1 or address_limit < 1 or window_s <= 0 or max_keys < 1:
            raise ValueError("limits, the window and max_keys must be positive")
        self._accounts = _Counter(account_limit, window_s, max_keys)
        self._addresses = _Counter(address_limit, window_s, max_keys)
        self._clock = clock

    def retry_after(self, account: str, address: str) -> int | None:
        """Whole seconds to wait (for a Retry-After header) when the account or the
        address has used up its failures; None when an attempt may go ahead."""
        now = self._clock()
        waits = [
            wait
            for wait in (
                self._accounts.retry_after(_key(account), now),
                self._addresses.retry_after(_key(address), now),
            )
            if wait is not None
        ]
        return max(1, math.ceil(max(waits))) if waits else None

    def failed(self, account: str, address: str) -> None:
        now = self._clock()
        self._accounts.fail(_key(account), now)
        self._addresses.fail(_key(address), now)

    def succeeded(self, account: str) -> None:
        self._accounts.clear(_key(account))

    def sizes(self) -> tuple[int, int]:
        """How many accounts and addresses are counted (for tests and metrics)."""
        return len(self._accounts), len(self._addresses)


def _key(value: str) -> str:
    # Usernames are matched case-insensitively here so `Kim` and `kim` share a count.
    return value.strip().lower()[:MAX_KEY_LENGTH]
