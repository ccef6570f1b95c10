"""Password hashes: Argon2id for new ones, the older scrypt format still verified.

Hashing and verifying cost tens of milliseconds of CPU and 64 MiB each (argon2-cffi's
defaults, the RFC 9106 "second recommended" profile), so the async functions run them
on a small executor of their own: the event loop keeps serving other requests, and a
burst of sign-ins queues there instead of taking every thread of the default pool.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

ARGON2_PREFIX = "$argon2id$"
SCRYPT_PREFIX = "scrypt$"
# At most this many hashes are computed at once (each holds 64 MiB while it runs).
HASH_WORKERS = 2

_hasher = PasswordHasher()  # Argon2id, time_cost=3, memory_cost=64 MiB, parallelism=4
_executor = ThreadPoolExecutor(max_workers=HASH_WORKERS, thread_name_prefix="signin-hash")


@dataclass(frozen=True)
class Verdict:
    """Whether the password matched, and the hash to store instead when the stored
    one is of an older kind or weaker parameters (set only when `ok`)."""

    ok: bool
    new_hash: str | None = None


def is_known_hash(stored: str) -> bool:
    """A hash this module can verify: Argon2id, or the older `scrypt$n$r$p$salt$hash`."""
    return stored.startswith((ARGON2_PREFIX, SCRYPT_PREFIX))


def hash_password_sync(password: str) -> str:
    """An Argon2id hash (PHC string `$argon2id$v=19$m=...`). Blocks: use `hash_password`
    from async code."""
    return _hasher.hash(password)


def verify_password_sync(password: str, stored: str) -> Verdict:
    """Checks `password` against `stored`; a malformed or unknown hash never matches."""
    if stored.startswith(ARGON2_PREFIX):
        try:
            _hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return Verdict(False)
        upgrade = _hasher.check_needs_rehash(stored)
        return Verdict(True, _hasher.hash(password) if upgrade else None)
    if stored.startswith(SCRYPT_PREFIX) and _scrypt_matches(password, stored):
        return Verdict(True, _hasher.hash(password))
    return Verdict(False)


async def hash_password(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(_executor, hash_password_sync, password)


async def verify_password(password: str, stored: str) -> Verdict:
    return await asyncio.get_running_loop().run_in_executor(
        _executor, verify_password_sync, password, stored
    )


# Verified when a username is unknown, so a wrong name costs as long as a wrong password
# (no telling which usernames exist from the time an answer takes).
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


async def verify_unknown_user(password: str) -> Verdict:
    await verify_password(password, _DUMMY_HASH)
    return Verdict(False)


def _scrypt_matches(password: str, stored: str) -> bool:
    """The console's first format: `scrypt$n$r$p$salt$hash`, URL-safe base64."""
    try:
        _scheme, n, r, p, salt, digest = stored.split("$")
        expected = base64.urlsafe_b64decode(digest)
        actual = hashlib.scrypt(
            password.encode(),
            salt=base64.urlsafe_b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
            maxmem=256 * 1024 * 1024,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)
