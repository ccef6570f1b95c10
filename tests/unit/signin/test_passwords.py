"""Argon2id hashes, the older scrypt format verified and upgraded, off the event loop."""

from __future__ import annotations

import asyncio
import threading

from argon2 import PasswordHasher

from services.lib.signin import (
    hash_password,
    hash_password_sync,
    is_known_hash,
    passwords,
    verify_password,
    verify_password_sync,
    verify_unknown_user,
)

# The console's first format (services/console/users.py before Argon2id), password "songpa-demo".
SCRYPT = "scrypt$16384$8$1$2UnZqEiIoDaWT6pJKbxhZQ==$23d0rXLrUFu2m2vJCJL-GhO0-4Pg0OAD-TMwcJIKVQE="


def test_new_hashes_are_argon2id_and_verify() -> None:
    stored = hash_password_sync("a long passphrase")
    assert stored.startswith("$argon2id$")
    assert verify_password_sync("a long passphrase", stored).ok
    assert not verify_password_sync("a long passphrasf", stored).ok


def test_an_argon2id_hash_of_current_parameters_needs_no_upgrade() -> None:
    assert verify_password_sync("pw-12345678", hash_password_sync("pw-12345678")).new_hash is None


def test_an_old_scrypt_hash_verifies_and_comes_back_upgraded_to_argon2id() -> None:
    verdict = verify_password_sync("songpa-demo", SCRYPT)
    assert verdict.ok
    assert verdict.new_hash is not None
    assert verdict.new_hash.startswith("$argon2id$")
    assert verify_password_sync("songpa-demo", verdict.new_hash).ok


def test_a_wrong_password_against_scrypt_is_refused_and_not_upgraded() -> None:
    verdict = verify_password_sync("songpa-wrong", SCRYPT)
    assert not verdict.ok
    assert verdict.new_hash is None


def test_weaker_argon2_parameters_are_upgraded() -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8192).hash("pw-12345678")
    verdict = verify_password_sync("pw-12345678", weak)
    assert verdict.ok
    assert verdict.new_hash is not None
    assert verdict.new_hash != weak


def test_malformed_and_unknown_hashes_never_match() -> None:
    for stored in ("", "plain-text", "scrypt$x", "$argon2id$broken", "md5$abc"):
        assert not verify_password_sync("plain-text", stored).ok
    assert not is_known_hash("plain-text")
    assert is_known_hash(SCRYPT)
    assert is_known_hash(hash_password_sync("x"))


async def test_hashing_and_verifying_run_off_the_event_loop(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    threads: list[str] = []
    real = passwords._hasher

    class Recording:
        """The real hasher, noting which thread each call runs on."""

        def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
            threads.append(threading.current_thread().name)
            return getattr(real, name)

    monkeypatch.setattr(passwords, "_hasher", Recording())
    stored = await hash_password("pw-12345678")
    assert (await verify_password("pw-12345678", stored)).ok
    assert not (await verify_unknown_user("pw-12345678")).ok
    assert threads
    assert all(name.startswith("signin-hash") for name in threads)
    assert threading.current_thread().name not in threads


async def test_concurrent_verifications_share_a_bounded_pool() -> None:
    stored = hash_password_sync("pw-12345678")
    verdicts = await asyncio.gather(*(verify_password("pw-12345678", stored) for _ in range(4)))
    assert all(v.ok for v in verdicts)
    assert passwords._executor._max_workers == passwords.HASH_WORKERS
