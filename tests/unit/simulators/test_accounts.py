"""Simulated coordinators' accounts: the users file the tools write is one the console
loads (checked with the console's own loader: tests may import a deployable), the
passwords stay with their owner, the CLI falls back to the demo coordinators."""

from __future__ import annotations

import argparse
import stat
from pathlib import Path

import pytest

from services.console.auth import load_users
from services.tools.simulators import accounts
from services.tools.simulators.cli import UsageError, load_staff_accounts


def test_accounts_are_named_after_their_centre_with_distinct_random_passwords() -> None:
    made = accounts.make_accounts(["centre-songpa-gu", "centre-guro-gu"], per_centre=2)
    assert [a.username for a in made] == [
        "sim-songpa-gu-1",
        "sim-songpa-gu-2",
        "sim-guro-gu-1",
        "sim-guro-gu-2",
    ]
    assert len({a.password for a in made}) == 4
    assert "password" not in repr(made[0])
    counted = accounts.make_accounts({"centre-jung-gu": 3})
    assert [a.centre_id for a in counted] == ["centre-jung-gu"] * 3


def test_the_simulators_districts_map_to_their_centres() -> None:
    centres = accounts.simulated_centres()
    assert "centre-songpa-gu" in centres
    assert len(centres) == len(set(centres)) >= 4
    counts = accounts.local_system_staff(simulated=3)
    assert counts["centre-songpa-gu"] == 3
    assert counts["centre-jung-gu"] == 1
    assert set(counts) == set(accounts.all_centres())
    with pytest.raises(ValueError, match="Atlantis"):
        accounts.centres_for(["Atlantis"])


async def test_the_console_loads_the_users_file_and_knows_each_password(tmp_path: Path) -> None:
    setup = accounts.prepare(tmp_path, ["centre-songpa-gu", "centre-gangnam-gu"], per_centre=1)
    assert setup.env == {"CARELINK_CONSOLE_USERS_FILE": str(tmp_path / "console-users.yaml")}
    book = load_users(setup.users_file)
    for account in setup.accounts:
        user = await book.authenticate(account.username, account.password)
        assert user is not None
        assert user.centre_id == account.centre_id
        assert user.role == "coordinator"
        assert await book.authenticate(account.username, "wrong") is None
    # The demo accounts are kept, with their published passwords.
    for demo in accounts.DEMO_ACCOUNTS:
        assert await book.authenticate(demo.username, demo.password) is not None
    assert "songpa-lead" in {u.username for u in book.all()}
    # Hashes only in the console's file; the passwords in the owner's file alone.
    users_text = setup.users_file.read_text(encoding="utf-8")
    assert not any(a.password in users_text for a in setup.accounts)
    assert stat.S_IMODE(setup.accounts_file.stat().st_mode) == 0o600
    assert accounts.load_accounts(setup.accounts_file) == setup.accounts


def test_the_cli_reads_the_accounts_beside_the_system_file_or_signs_in_as_the_demo_coordinators(
    tmp_path: Path,
) -> None:
    system_file = tmp_path / "system.json"
    args = argparse.Namespace(system=system_file, accounts=None)
    assert load_staff_accounts(args) == list(accounts.DEMO_ACCOUNTS)
    made = accounts.make_accounts(["centre-guro-gu"])
    accounts.save_accounts(tmp_path / accounts.ACCOUNTS_FILE, made)
    assert load_staff_accounts(args) == made
    with pytest.raises(UsageError, match="not found"):
        load_staff_accounts(argparse.Namespace(system=system_file, accounts=tmp_path / "none"))
    (tmp_path / "bad.json").write_text("{}", encoding="utf-8")
    with pytest.raises(UsageError, match="not a staff accounts file"):
        load_staff_accounts(argparse.Namespace(system=system_file, accounts=tmp_path / "bad.json"))
