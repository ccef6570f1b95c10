"""Who is signed in: the users file, password hashes and signed session tokens.

Users are configuration (deploy/config/users.yaml): a username, a display name,
the Care SOS centre they work for and a role (`coordinator`, or `lead`, who may
also hand tasks to others). Passwords are stored as scrypt hashes with a salt.

A session is a token signed with the console's secret key (itsdangerous),
valid for `session_hours`: the pages carry it in an HttpOnly, SameSite=Strict
cookie, API clients as `Authorization: Bearer <token>`. The token names only
the user; their centre and role are looked up in the users file on every request,
so removing a user ends their sessions.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from services.console.metrics import SIGN_INS

Role = Literal["coordinator", "lead"]
ROLES: tuple[Role, ...] = ("coordinator", "lead")
COOKIE = "carelink_session"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_DKLEN = 32


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


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """`scrypt$n$r$p$salt$hash`, salt and hash in URL-safe base64."""
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=_DKLEN, **_SCRYPT)
    n, r, p = _SCRYPT["n"], _SCRYPT["r"], _SCRYPT["p"]
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
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


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


# Checked when a username is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


class UserBook:
    def __init__(self, users: dict[str, User]) -> None:
        self._users = users

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

    def authenticate(self, username: str, password: str) -> User | None:
        user = self._users.get(username)
        if user is None:
            verify_password(password, _DUMMY_HASH)
        elif verify_password(password, user.password_hash):
            SIGN_INS.labels("accepted").inc()
            return user
        SIGN_INS.labels("refused").inc()
        return None


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
    return UserBook(users)


def _user(entry: Any, where: str) -> User:
    if not isinstance(entry, dict):
        raise UsersFileError(f"{where}: expected a mapping")
    for name in ("username", "display_name", "centre_id", "role", "password"):
        if not isinstance(entry.get(name), str) or not entry[name]:
            raise UsersFileError(f"{where}: `{name}` is required")
    if entry["role"] not in ROLES:
        raise UsersFileError(f"{where}: role must be one of {', '.join(ROLES)}")
    if not entry["password"].startswith("scrypt$"):
        raise UsersFileError(f"{where}: password must be an scrypt hash, never plain text")
    return User(
        username=entry["username"],
        display_name=entry["display_name"],
        centre_id=entry["centre_id"],
        role=entry["role"],
        password_hash=entry["password"],
    )


class Sessions:
    """Signs and checks session tokens."""

    def __init__(self, secret_key: str, *, max_age_s: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret_key, salt="carelink.console.session")
        self.max_age_s = max_age_s

    def issue(self, user: User) -> str:
        token: str = self._serializer.dumps({"u": user.username})
        return token

    def username(self, token: str) -> str | None:
        """The token's user, or None when it is forged, malformed or expired."""
        try:
            data: Any = self._serializer.loads(token, max_age=self.max_age_s)
        except (SignatureExpired, BadSignature):
            return None
        name = data.get("u") if isinstance(data, dict) else None
        return name if isinstance(name, str) else None


def bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
