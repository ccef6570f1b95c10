"""Refusing to start unsafely: the default signing key or demo accounts outside a local run.

A *local run* is a process started with `CARELINK_ENV=local` (the local stack
`make run`, the tests' systems and compose's explicit local setting set it). Any
other value, or none, counts as a deployment: fail closed, so forgetting the
setting in production refuses to start instead of exposing demo passwords.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping

from services.lib.signin.passwords import verify_password_sync

ENV_VAR = "CARELINK_ENV"
LOCAL = "local"
MIN_KEY_LENGTH = 32
# Exit code of a process refusing to start on its configuration, like the services'.
EXIT_CONFIGURATION = 2


def is_local_run(environ: Mapping[str, str] | None = None) -> bool:
    environ = os.environ if environ is None else environ
    return environ.get(ENV_VAR, "").strip().lower() == LOCAL


def unsafe_start_problems(
    *,
    secret_key: str | None,
    default_keys: Iterable[str],
    password_hashes: Mapping[str, str],
    demo_passwords: Mapping[str, str],
    key_setting: str,
    users_setting: str,
) -> list[str]:
    """What makes a start outside a local run unsafe (empty: safe). `password_hashes`
    are the configured accounts' (username -> hash); `demo_passwords` the published
    demo credentials (username -> password): an account that still accepts its
    published password is a demo account, wherever its file came from."""
    problems: list[str] = []
    if not secret_key:
        problems.append(f"{key_setting} is not set: give it a random value of its own")
    elif secret_key in set(default_keys):
        problems.append(f"{key_setting} is the published default: give it a random value")
    elif len(secret_key) < MIN_KEY_LENGTH:
        problems.append(f"{key_setting} is shorter than {MIN_KEY_LENGTH} characters")
    demo = sorted(
        username
        for username, password in demo_passwords.items()
        if username in password_hashes
        and verify_password_sync(password, password_hashes[username]).ok
    )
    if demo:
        problems.append(
            f"{users_setting} holds demo accounts with their published passwords "
            f"({', '.join(demo)}): give the deployment its own users file"
        )
    return problems


def refuse_unsafe_start(app: str, problems: list[str]) -> None:
    """Exits with code 2 naming every problem, when there is one."""
    if not problems:
        return
    print(
        f"carelink {app}: refusing to start outside a local run ({ENV_VAR}={LOCAL}):",
        file=sys.stderr,
    )
    for problem in problems:
        print(f"  - {problem}", file=sys.stderr)
    sys.exit(EXIT_CONFIGURATION)
