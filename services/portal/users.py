"""The portal's users: medical social workers, each belonging to one hospital.

A users file (deploy/config/portal-users.yaml for local demos; production sets
CARELINK_PORTAL_USERS_FILE) holds a username, a display name, the hospital and an
Argon2id hash per user, never a password. A user sees and sends only their own
hospital's referrals. Manage it with

    python -m services.portal.users add kim --hospital police-hospital \\
        --display-name "김 사회복지사"            # asks for the password
    python -m services.portal.users remove kim
    python -m services.portal.users list
"""

from __future__ import annotations

import argparse
import getpass
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from services.lib.signin import (
    hash_password_sync,
    is_known_hash,
    verify_password,
    verify_unknown_user,
)

# The README's demo accounts (deploy/config/portal-users.yaml): refused outside a local run.
DEMO_PASSWORDS = {"police-sw": "police-demo", "gangnam-sw": "gangnam-demo"}


class UsersFileError(ValueError):
    pass


@dataclass(frozen=True)
class User:
    username: str
    display_name: str
    hospital_id: str
    password_hash: str


class UserBook:
    def __init__(self, users: dict[str, User]) -> None:
        self._users = users

    def get(self, username: str) -> User | None:
        return self._users.get(username)

    def all(self) -> list[User]:
        return sorted(self._users.values(), key=lambda u: u.username)

    @property
    def hospitals(self) -> set[str]:
        return {u.hospital_id for u in self._users.values()}

    @property
    def hashes(self) -> dict[str, str]:
        return {u.username: u.password_hash for u in self._users.values()}

    async def authenticate(self, username: str, password: str) -> User | None:
        """The user when the password matches; an unknown name costs as long as a
        wrong password (off the event loop, services.lib.signin)."""
        user = self._users.get(username)
        if user is None:
            await verify_unknown_user(password)
            return None
        verdict = await verify_password(password, user.password_hash)
        return user if verdict.ok else None


def load_users(path: Path) -> UserBook:
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsersFileError(f"cannot read the users file {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise UsersFileError(f"{path}: not YAML: {exc}") from exc
    raw = {} if raw is None else raw
    entries = (raw.get("users") or []) if isinstance(raw, dict) else None
    if not isinstance(entries, list):
        raise UsersFileError(f"{path}: expected a mapping with a `users` list")
    users: dict[str, User] = {}
    for index, entry in enumerate(entries):
        where = f"{path}: users[{index}]"
        if not isinstance(entry, dict):
            raise UsersFileError(f"{where}: expected a mapping")
        for name in ("username", "display_name", "hospital_id", "password"):
            if not isinstance(entry.get(name), str) or not entry[name]:
                raise UsersFileError(f"{where}: `{name}` is required")
        if not is_known_hash(entry["password"]):
            raise UsersFileError(f"{where}: password must be a hash, never plain text")
        if entry["username"] in users:
            raise UsersFileError(f"{path}: user {entry['username']!r} appears twice")
        users[entry["username"]] = User(
            entry["username"], entry["display_name"], entry["hospital_id"], entry["password"]
        )
    return UserBook(users)


def check_hospitals(users: UserBook, served: list[str], registered: set[str]) -> list[str]:
    """Problems that stop the portal: a user of a hospital it does not serve, or a
    served hospital the registry does not know (its topics would not exist)."""
    problems = [f"hospital {h!r} is not in the registry" for h in served if h not in registered]
    problems += [
        f"user {u.username!r} belongs to {u.hospital_id!r}, which this portal does not serve"
        for u in users.all()
        if u.hospital_id not in served
    ]
    return problems


_HEADER = "# carelink portal users: Argon2id hashes only (python -m services.portal.users)\n"


def main(argv: list[str] | None = None) -> int:
    from services.portal.settings import PortalSettings

    parser = argparse.ArgumentParser(prog="python -m services.portal.users")
    parser.add_argument(
        "--file",
        type=Path,
        default=None,
        help="the users file (default: $CARELINK_PORTAL_USERS_FILE or "
        "deploy/config/portal-users.yaml)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="add a user, or set an existing user's password")
    add.add_argument("username")
    add.add_argument("--hospital", required=True, help="the hospital id, e.g. police-hospital")
    add.add_argument("--display-name", required=True)
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    remove = commands.add_parser("remove", help="remove a user")
    remove.add_argument("username")
    commands.add_parser("list", help="list users (never their hashes)")
    args = parser.parse_args(argv)

    path: Path = args.file or PortalSettings().portal_users_file
    header, entries = _HEADER, []
    if path.exists():
        try:
            load_users(path)
        except UsersFileError as exc:
            print(exc, file=sys.stderr)
            return 2
        text = path.read_text(encoding="utf-8")
        header = "".join(line + "\n" for line in text.splitlines() if line.startswith("#"))
        entries = list((yaml.safe_load(text) or {}).get("users") or [])
    if args.command == "list":
        for e in entries:
            print(f"{e['username']}\t{e['hospital_id']}\t{e['display_name']}")
        return 0
    if args.command == "remove":
        kept = [e for e in entries if e.get("username") != args.username]
        if len(kept) == len(entries):
            print(f"no user {args.username!r} in {path}", file=sys.stderr)
            return 1
        _write(path, header, kept)
        return 0
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("password: ")
        if password != getpass.getpass("again: "):
            print("the passwords differ", file=sys.stderr)
            return 1
    if len(password) < 8:
        print("a password needs at least 8 characters", file=sys.stderr)
        return 1
    entries = [e for e in entries if e.get("username") != args.username]
    entries.append(
        {
            "username": args.username,
            "display_name": args.display_name,
            "hospital_id": args.hospital,
            "password": hash_password_sync(password),
        }
    )
    _write(path, header, entries)
    print(f"{args.username} saved in {path}")
    return 0


def _write(path: Path, header: str, entries: list[dict[str, Any]]) -> None:
    body = yaml.safe_dump(
        {"version": 1, "users": entries}, allow_unicode=True, sort_keys=False, width=200
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "\n" + body, encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
