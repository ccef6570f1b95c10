"""Who is signed in: the users file, password hashes and server-side sessions.

Users are configuration (deploy/config/users.yaml): a username, a display name,
the Care SOS centre they work for and a role (`coordinator`, or `lead`, who may
also hand tasks to others). Passwords are stored as Argon2id hashes; older scrypt
hashes still verify and are replaced by Argon2id at the user's next successful
sign-in (written back to the users file when it is writable, else kept in memory
and logged). Hashing, verifying, throttling and sessions are services.lib.signin's.

A session is a signed token naming a session held in the console's memory, valid
for `session_hours` or until signed out: the pages carry it in an HttpOnly,
SameSite=Strict cookie, API clients as `Authorization: Bearer <token>`. Centre and
role are looked up in the users file on every request.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from services.console.metrics import SIGN_INS
from services.lib.runtime.logging import get_logger
from services.lib.signin import is_known_hash, verify_password, verify_unknown_user

log = get_logger(__name__)

Role = Literal["coordinator", "lead"]
ROLES: tuple[Role, ...] = ("coordinator", "lead")
COOKIE = "carelink_session"
# The demo accounts of deploy/config/users.yaml, whose passwords the README publishes:
# the console refuses to start outside a local run while an account accepts one.
DEMO_PASSWORDS = {"songpa": "songpa-demo", "songpa-lead": "lead-demo", "gangnam": "gangnam-demo"}
# Signing keys published in this repository (compose's old default).
DEFAULT_SECRET_KEYS = ("change-me-dev-only",)


class UsersFileError(ValueError):
    pass


@dataclass(frozen=True)
class User:
    username: str
    display_name: str
    centre_id: str
    role: Role
    password_hash: str

    @property
    def is_lead(self) -> bool:
        return self.role == "lead"


class UserBook:
    def __init__(self, users: dict[str, User], path: Path | None = None) -> None:
        self._users = users
        # Where upgraded password hashes are written back (None: memory only).
        self._path = path
        self._lock = asyncio.Lock()

    def get(self, username: str) -> User | None:
        return self._users.get(username)

    def all(self) -> list[User]:
        return sorted(self._users.values(), key=lambda u: u.username)

    def colleagues(self, user: User) -> list[User]:
        return [u for u in self.all() if u.centre_id == user.centre_id]

    def display_name(self, username: str | None) -> str | None:
        if username is None:
            return None
        user = self._users.get(username)
        return user.display_name if user else username

    def password_hashes(self) -> dict[str, str]:
        return {u.username: u.password_hash for u in self._users.values()}

    async def authenticate(self, username: str, password: str) -> User | None:
        user = self._users.get(username)
        if user is None:
            await verify_unknown_user(password)
            SIGN_INS.labels("refused").inc()
            return None
        verdict = await verify_password(password, user.password_hash)
        if not verdict.ok:
            SIGN_INS.labels("refused").inc()
            return None
        SIGN_INS.labels("accepted").inc()
        if verdict.new_hash is not None:
            user = await self._upgrade(user, verdict.new_hash)
        return user

    async def _upgrade(self, user: User, new_hash: str) -> User:
        """Keeps the stronger hash: in memory at once, in the users file when it can."""
        async with self._lock:
            upgraded = dataclasses.replace(user, password_hash=new_hash)
            self._users[user.username] = upgraded
            if self._path is None:
                return upgraded
            try:
                await asyncio.to_thread(replace_hash, self._path, user.password_hash, new_hash)
            except (OSError, UsersFileError) as exc:
                # A read-only mount (a Kubernetes Secret): the old hash stays in the file
                # and is upgraded again after each restart until the file is rewritten.
                log.warning(
                    "password hash upgraded in memory only; rewrite the users file with "
                    "python -m services.console.users add",
                    actor=user.username,
                    error=type(exc).__name__,
                )
            else:
                log.info("password hash upgraded to argon2id", actor=user.username)
            return upgraded


def replace_hash(path: Path, old: str, new: str) -> None:
    """Swaps one stored hash for another in the users file, keeping everything else
    (comments, order) as it is; replaces the file atomically, and only when the result
    still loads with the new hash in place."""
    text = path.read_text(encoding="utf-8")
    if text.count(old) != 1:
        raise UsersFileError(f"{path}: the hash to replace is not there exactly once")
    updated = text.replace(old, new)
    raw: Any = yaml.safe_load(updated)
    if new not in [e.get("password") for e in raw.get("users") or [] if isinstance(e, dict)]:
        raise UsersFileError(f"{path}: the upgraded hash would not load")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(updated)
        os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_users(path: Path) -> UserBook:
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsersFileError(f"cannot read the users file {path}: {exc}") from exc
    users: dict[str, User] = {}
    raw = {} if raw is None else raw  # only comments: nobody may sign in yet
    entries = (raw.get("users") or []) if isinstance(raw, dict) else None
    if not isinstance(entries, list):
        raise UsersFileError(f"{path}: expected a mapping with a `users` list")
    for index, entry in enumerate(entries):
        user = _user(entry, f"{path}: users[{index}]")
        if user.username in users:
            raise UsersFileError(f"{path}: user {user.username!r} appears twice")
        users[user.username] = user
    return UserBook(users, path)


def _user(entry: Any, where: str) -> User:
    if not isinstance(entry, dict):
        raise UsersFileError(f"{where}: expected a mapping")
    for name in ("username", "display_name", "centre_id", "role", "password"):
        if not isinstance(entry.get(name), str) or not entry[name]:
            raise UsersFileError(f"{where}: `{name}` is required")
    if entry["role"] not in ROLES:
        raise UsersFileError(f"{where}: role must be one of {', '.join(ROLES)}")
    if not is_known_hash(entry["password"]):
        raise UsersFileError(
            f"{where}: password must be an Argon2id (or older scrypt) hash, never plain text"
        )
    return User(
        username=entry["username"],
        display_name=entry["display_name"],
        centre_id=entry["centre_id"],
        role=entry["role"],
        password_hash=entry["password"],
    )


def bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
