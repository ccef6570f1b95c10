"""Progress lines on stderr, so a person sees the benchmark moving."""

from __future__ import annotations

import sys
import time

_STARTED = time.monotonic()


def say(phase: str, message: str) -> None:
    elapsed = time.monotonic() - _STARTED
    minutes, seconds = divmod(int(elapsed), 60)
    print(f"[bench {minutes:02d}:{seconds:02d}] {phase:<12} {message}", file=sys.stderr, flush=True)


class Ticker:
    """Says something at most every `every` seconds (for loops that run thousands of times)."""

    def __init__(self, phase: str, every: float = 2.0) -> None:
        self.phase = phase
        self.every = every
        self._last = 0.0

    def __call__(self, message: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= self.every:
            self._last = now
            say(self.phase, message)
