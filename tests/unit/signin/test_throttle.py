"""Failed sign-ins throttled per account and per address, in bounded memory."""

from __future__ import annotations

import pytest

from services.lib.signin import SignInThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_account_is_refused_after_its_limit_until_the_window_ends() -> None:
    clock = Clock()
    throttle = SignInThrottle(account_limit=3, address_limit=100, window_s=60, clock=clock)
    for n in range(3):
        assert throttle.retry_after("kim", f"10.0.0.{n}") is None
        throttle.failed("kim", f"10.0.0.{n}")
    assert throttle.retry_after("kim", "10.0.0.9") == 60
    assert throttle.retry_after("Kim ", "10.0.0.9") == 60  # same account, however typed
    assert throttle.retry_after("lee", "10.0.0.9") is None  # others are untouched
    clock.now += 45.5
    assert throttle.retry_after("kim", "10.0.0.9") == 15  # rounded up, never 0
    clock.now += 15
    assert throttle.retry_after("kim", "10.0.0.9") is None


def test_an_address_is_refused_after_its_limit_across_accounts() -> None:
    throttle = SignInThrottle(account_limit=100, address_limit=4, window_s=60, clock=Clock())
    for n in range(4):
        throttle.failed(f"user{n}", "192.0.2.7")
    assert throttle.retry_after("someone-else", "192.0.2.7") == 60
    assert throttle.retry_after("someone-else", "192.0.2.8") is None


def test_a_success_clears_the_account_but_not_the_address() -> None:
    throttle = SignInThrottle(account_limit=2, address_limit=3, window_s=60, clock=Clock())
    throttle.failed("kim", "192.0.2.7")
    throttle.succeeded("kim")
    throttle.failed("kim", "192.0.2.7")
    assert throttle.retry_after("kim", "192.0.2.8") is None  # 1 failure since the success
    throttle.failed("lee", "192.0.2.7")
    assert throttle.retry_after("nobody", "192.0.2.7") == 60  # 3 from the address


def test_memory_stays_bounded_under_a_flood_of_names() -> None:
    throttle = SignInThrottle(account_limit=5, address_limit=5, window_s=60, max_keys=100)
    for n in range(5000):
        throttle.failed(f"guess-{n}", f"198.51.100.{n % 256}-{n}")
    assert throttle.sizes() == (100, 100)


def test_nonsense_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        SignInThrottle(account_limit=0)
