"""Manage the console's users file: `python -m services.console.users add|remove|list`.

    python -m services.console.users add kim --centre centre-songpa-gu \\
        --display-name "김 코디네이터" --role coordinator        # asks for the password

The password is read from the terminal (or from stdin with --password-stdin)
and only its Argon2id hash is written. The file's leading comment is kept.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any

import yaml

from services.console.auth import ROLES, UsersFileError, load_users
from services.console.settings import ConsoleSettings
from services.lib.signin import hash_password_sync


def _header(path: Path) -> str:
    if not path.exists():
        return "# carelink console users: password hashes only (python -m services.console.users)\n"
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#") and line.strip():
            break
        lines.append(line)
    return "\n".join(lines).rstrip("\n") + "\n"


def _entries(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    load_users(path)  # refuse to edit a file that does not load
    raw: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return list(raw.get("users") or [])


def _write(path: Path, header: str, entries: list[dict[str, Any]]) -> None:
    body = yaml.safe_dump(
        {"version": 1, "users": entries}, allow_unicode=True, sort_keys=False, width=200
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "\n" + body, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.console.users")
    parser.add_argument(
        "--file",
        type=Path,
        default=None,
        help="the users file (default: $CARELINK_CONSOLE_USERS_FILE or deploy/config/users.yaml)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="add a user, or set an existing user's password")
    add.add_argument("username")
    add.add_argument(
        "--centre", required=True, help="the Care SOS centre id, e.g. centre-songpa-gu"
    )
    add.add_argument("--display-name", required=True)
    add.add_argument("--role", choices=ROLES, default="coordinator")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    remove = commands.add_parser("remove", help="remove a user (their sessions end)")
    remove.add_argument("username")
    commands.add_parser("list", help="list users (never their hashes)")
    args = parser.parse_args(argv)

    path: Path = args.file or ConsoleSettings().users_file
    try:
        header, entries = _header(path), _entries(path)
    except UsersFileError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.command == "list":
        for entry in entries:
            print(
                f"{entry['username']}\t{entry['role']}\t{entry['centre_id']}\t{entry['display_name']}"
            )
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
    entry = {
        "username": args.username,
        "display_name": args.display_name,
        "centre_id": args.centre,
        "role": args.role,
        "password": hash_password_sync(password),
    }
    entries = [e for e in entries if e.get("username") != args.username]
    entries.append(entry)
    _write(path, header, entries)
    print(f"{args.username} saved in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
