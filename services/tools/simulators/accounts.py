"""Who the simulated coordinators sign in as.

The simulated staff work through the console's /api like people, so each one
needs an account of the console: a username, a password and the Care SOS centre
whose queue it sees. Two sources:

- the demo accounts of `deploy/config/users.yaml` (their passwords are published
  in the README), enough for Songpa-gu and Gangnam-gu;
- simulated accounts made for a local system: `prepare` writes a users file for
  the console (the demo accounts plus one or more `sim-<district>-<n>` per centre,
  scrypt hashes only, in the console's users-file format) and, beside it, the
  passwords for the simulators (`staff-accounts.json`, readable by its owner only).
  The local stack is started with `CARELINK_CONSOLE_USERS_FILE` pointing at the
  former (`prepare(...).env`).

Passwords of simulated accounts are random per file and never leave the machine.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from services.lib.policy import load_registry
from services.lib.runtime.settings import REPO_ROOT
from services.tools.simulators.referrals import SEOUL_DONGS

DEMO_USERS_FILE = REPO_ROOT / "deploy" / "config" / "users.yaml"
USERS_FILE = "console-users.yaml"
ACCOUNTS_FILE = "staff-accounts.json"
USERS_FILE_ENV = "CARELINK_CONSOLE_USERS_FILE"
# The console's users-file hash (services/console/auth.py): scrypt, n=2**14, r=8, p=1.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P, _DKLEN = 2**14, 8, 1, 32


@dataclass(frozen=True)
class Account:
    username: str
    password: str = field(repr=False)
    centre_id: str

    def to_json(self) -> dict[str, str]:
        return {"username": self.username, "password": self.password, "centre_id": self.centre_id}


# The README's demo coordinators (deploy/config/users.yaml); leads are left to people.
DEMO_ACCOUNTS: tuple[Account, ...] = (
    Account("songpa", "songpa-demo", "centre-songpa-gu"),
    Account("gangnam", "gangnam-demo", "centre-gangnam-gu"),
)


def simulated_centres() -> list[str]:
    """The centres of the districts the simulated hospitals and the benchmark refer to."""
    return centres_for(sorted(SEOUL_DONGS))


def centres_for(districts: Iterable[str]) -> list[str]:
    registry = load_registry()
    found: list[str] = []
    for district in districts:
        centre = registry.centre_for(district)
        if centre is None:
            raise ValueError(f"no Care SOS centre serves {district!r}")
        if centre.id not in found:
            found.append(centre.id)
    return found


def all_centres() -> list[str]:
    return [centre.id for centre in load_registry().centres]


def make_accounts(centres: Iterable[str] | Mapping[str, int], per_centre: int = 1) -> list[Account]:
    """Simulated coordinators with random passwords: `per_centre` for each centre, or as
    many as a mapping of centres says."""
    counts = dict(centres) if isinstance(centres, Mapping) else dict.fromkeys(centres, per_centre)
    if any(n < 1 for n in counts.values()):
        raise ValueError("every centre needs at least one coordinator")
    return [
        Account(f"sim-{centre.removeprefix('centre-')}-{n}", secrets.token_urlsafe(18), centre)
        for centre, count in counts.items()
        for n in range(1, count + 1)
    ]


def local_system_staff(simulated: int = 4) -> dict[str, int]:
    """Coordinators for `make run`: `simulated` in each centre the simulated hospitals
    refer to, one in every other centre (for `--district` runs anywhere)."""
    counts = dict.fromkeys(all_centres(), 1)
    counts.update(dict.fromkeys(simulated_centres(), simulated))
    return counts


def by_centre(
    accounts: Iterable[Account], per_centre: int | None = None
) -> dict[str, list[Account]]:
    """Accounts grouped by centre, at most `per_centre` of each (None: all)."""
    grouped: dict[str, list[Account]] = {}
    for account in accounts:
        grouped.setdefault(account.centre_id, []).append(account)
    if per_centre is not None:
        grouped = {centre: found[: max(1, per_centre)] for centre, found in grouped.items()}
    return grouped


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """The console's users-file format: `scrypt$n$r$p$salt$hash` (URL-safe base64)."""
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=_DKLEN
    )
    encoded = [base64.urlsafe_b64encode(part).decode() for part in (salt, digest)]
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${encoded[0]}${encoded[1]}"


def write_users_file(
    path: Path, accounts: Sequence[Account], *, base: Path | None = DEMO_USERS_FILE
) -> None:
    """A users file for the console: `base`'s users (the demo accounts) plus `accounts`."""
    entries: list[dict[str, Any]] = []
    if base is not None:
        raw: Any = yaml.safe_load(base.read_text(encoding="utf-8")) or {}
        entries = list(raw.get("users") or [])
    taken = {entry.get("username") for entry in entries}
    for account in accounts:
        if account.username in taken:
            raise ValueError(f"user {account.username!r} is already in {base}")
        entries.append(
            {
                "username": account.username,
                "display_name": f"Simulated coordinator ({account.username})",
                "centre_id": account.centre_id,
                "role": "coordinator",
                "password": hash_password(account.password),
            }
        )
    header = (
        "# carelink console users for a LOCAL system: the demo accounts and the simulated\n"
        "# coordinators (services/tools/simulators/accounts.py). Never deploy this file.\n"
    )
    body = yaml.safe_dump(
        {"version": 1, "users": entries}, allow_unicode=True, sort_keys=False, width=200
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + body, encoding="utf-8")


def save_accounts(path: Path, accounts: Sequence[Account]) -> None:
    """The simulators' side: usernames with their passwords, for the owner's eyes only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump({"accounts": [a.to_json() for a in accounts]}, out, indent=2)
        out.write("\n")
    os.chmod(path, 0o600)


def load_accounts(path: Path) -> list[Account]:
    try:
        raw: Any = json.loads(path.read_text(encoding="utf-8"))
        return [
            Account(str(a["username"]), str(a["password"]), str(a["centre_id"]))
            for a in raw["accounts"]
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a staff accounts file ({exc})") from None


@dataclass(frozen=True)
class StaffSetup:
    """What `prepare` made: the environment the console needs, and the accounts."""

    users_file: Path
    accounts_file: Path
    accounts: list[Account]

    @property
    def env(self) -> dict[str, str]:
        return {USERS_FILE_ENV: str(self.users_file)}


def prepare(
    directory: Path, centres: Iterable[str] | Mapping[str, int], per_centre: int = 1
) -> StaffSetup:
    """Simulated coordinators for `centres` (see make_accounts): the console's users file
    and the simulators' accounts file in `directory`."""
    accounts = make_accounts(centres, per_centre)
    users_file, accounts_file = directory / USERS_FILE, directory / ACCOUNTS_FILE
    write_users_file(users_file, accounts)
    save_accounts(accounts_file, accounts)
    return StaffSetup(users_file, accounts_file, accounts)
