"""Sign-in safety for people's interfaces (the console, the hospitals' portal).

A library: it holds no settings, no routes and no users; each gateway keeps its
own users and wires these parts into its sign-in and session handling.

Passwords (`passwords`)
    `await hash_password(pw) -> str`: an Argon2id PHC string (argon2-cffi defaults).
    `await verify_password(pw, stored) -> Verdict(ok, new_hash)`: Argon2id, and the
    older `scrypt$n$r$p$salt$hash` hashes; `new_hash` is set when `ok` and the stored
    hash should be replaced (scrypt, or Argon2 with weaker parameters): store it, so
    old hashes are upgraded at the next successful sign-in.
    `await verify_unknown_user(pw)`: spends the same time for an unknown username.
    Both run on a bounded executor of their own (`HASH_WORKERS` threads), never on the
    event loop. `hash_password_sync` / `verify_password_sync` are for CLIs and startup.
    `is_known_hash(s)`: whether a users file's value is a hash this library verifies.

Throttling (`throttle`)
    `SignInThrottle(account_limit=5, address_limit=50, window_s=900, max_keys=10_000)`:
    `retry_after(account, address) -> int | None` before checking a password (answer
    429 with `Retry-After: <seconds>` when it is not None, without checking);
    `failed(account, address)` after a refusal; `succeeded(account)` after a sign-in.

Sessions (`sessions`)
    `SessionStore(secret_key, max_age_s=..., salt=..., max_sessions=10_000)`:
    `issue(username) -> token`, `username(token) -> str | None` (None when forged,
    expired or revoked), `revoke(token)` at sign-out, `revoke_user(username)`.
    Sessions live in the process's memory: a restart signs everybody out; one replica
    (or sticky routing) per gateway.

Refusing an unsafe start (`startup`)
    `is_local_run()`: `CARELINK_ENV=local`; anything else is a deployment.
    `unsafe_start_problems(secret_key=..., default_keys=..., password_hashes=...,
    demo_passwords=..., key_setting=..., users_setting=...) -> list[str]` and
    `refuse_unsafe_start(app, problems)`: prints them and exits with code 2.
"""

from services.lib.signin.passwords import (
    HASH_WORKERS,
    Verdict,
    hash_password,
    hash_password_sync,
    is_known_hash,
    verify_password,
    verify_password_sync,
    verify_unknown_user,
)
from services.lib.signin.sessions import SessionStore
from services.lib.signin.startup import (
    ENV_VAR,
    EXIT_CONFIGURATION,
    LOCAL,
    is_local_run,
    refuse_unsafe_start,
    unsafe_start_problems,
)
from services.lib.signin.throttle import SignInThrottle

__all__ = [
    "ENV_VAR",
    "EXIT_CONFIGURATION",
    "HASH_WORKERS",
    "LOCAL",
    "SessionStore",
    "SignInThrottle",
    "Verdict",
    "hash_password",
    "hash_password_sync",
    "is_known_hash",
    "is_local_run",
    "refuse_unsafe_start",
    "unsafe_start_problems",
    "verify_password",
    "verify_password_sync",
    "verify_unknown_user",
]
