"""Sessions the server can revoke: sign-out ends a token at once."""

from __future__ import annotations

from services.lib.signin import SessionStore


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_token_names_its_user_until_revoked() -> None:
    store = SessionStore("k" * 40, max_age_s=3600)
    token = store.issue("kim")
    assert store.username(token) == "kim"
    assert store.revoke(token)
    assert store.username(token) is None
    assert not store.revoke(token)


def test_revoking_one_session_leaves_the_users_others() -> None:
    store = SessionStore("k" * 40, max_age_s=3600)
    first, second = store.issue("kim"), store.issue("kim")
    store.revoke(first)
    assert store.username(second) == "kim"


def test_revoke_user_ends_all_of_their_sessions_only() -> None:
    store = SessionStore("k" * 40, max_age_s=3600)
    tokens = [store.issue("kim") for _ in range(3)]
    other = store.issue("lee")
    assert store.revoke_user("kim") == 3
    assert all(store.username(t) is None for t in tokens)
    assert store.username(other) == "lee"


def test_forged_altered_and_foreign_tokens_are_refused() -> None:
    store = SessionStore("k" * 40, max_age_s=3600)
    token = store.issue("kim")
    assert store.username(token[:-2] + ("AA" if not token.endswith("AA") else "BB")) is None
    assert store.username("not-a-token") is None
    foreign = SessionStore("x" * 40, max_age_s=3600)
    assert store.username(foreign.issue("kim")) is None


def test_a_session_ends_when_its_time_is_up() -> None:
    clock = Clock()
    store = SessionStore("k" * 40, max_age_s=60, clock=clock)
    token = store.issue("kim")
    clock.now += 61
    assert store.username(token) is None
    assert len(store) == 0


def test_the_store_is_bounded_and_drops_the_oldest_session() -> None:
    store = SessionStore("k" * 40, max_age_s=3600, max_sessions=3)
    tokens = [store.issue(f"user{n}") for n in range(4)]
    assert len(store) == 3
    assert store.username(tokens[0]) is None
    assert store.username(tokens[3]) == "user3"
