"""The deadline watcher's wait after failed scans: the interval, doubling, capped."""

from __future__ import annotations

from services.lib.tasks.deadlines import backoff_delay


def test_no_failure_waits_the_interval() -> None:
    assert backoff_delay(0, interval_s=30, max_s=300) == 30


def test_the_wait_doubles_per_failure_in_a_row_up_to_the_cap() -> None:
    waits = [backoff_delay(n, interval_s=30, max_s=300) for n in range(1, 7)]
    assert waits == [30, 60, 120, 240, 300, 300]


def test_days_of_failures_neither_overflow_nor_exceed_the_cap() -> None:
    assert backoff_delay(100_000, interval_s=30, max_s=300) == 300


def test_a_cap_below_the_interval_never_makes_the_watcher_scan_faster() -> None:
    assert backoff_delay(5, interval_s=60, max_s=10) == 60
