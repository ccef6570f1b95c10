"""The portal's configuration: its port, the demo users file, which hospitals it serves
and what stops it from starting."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.lib.policy import load_registry
from services.lib.signin import verify_password_sync
from services.portal.settings import DEFAULT_PORT, DEMO_USERS_FILE, PortalSettings
from services.portal.users import DEMO_PASSWORDS, UsersFileError, check_hospitals, load_users
from services.tools.stack.deployables import PORTAL_PORT


def test_the_stack_knows_the_portals_port() -> None:
    assert PORTAL_PORT == DEFAULT_PORT == PortalSettings().health_port


def test_the_demo_accounts_are_registered_hospitals_with_their_published_passwords() -> None:
    users = load_users(DEMO_USERS_FILE)
    assert {u.username for u in users.all()} == set(DEMO_PASSWORDS)
    for user in users.all():
        assert user.password_hash.startswith("$argon2id$")
        assert verify_password_sync(DEMO_PASSWORDS[user.username], user.password_hash).ok
    assert users.hospitals <= load_registry().hospital_ids


def test_served_hospitals_default_to_the_users_and_may_be_listed() -> None:
    assert PortalSettings().served_hospitals({"b", "a"}) == ["a", "b"]
    listed = PortalSettings(portal_hospitals="police-hospital, severance")
    assert listed.served_hospitals({"a"}) == ["police-hospital", "severance"]


def test_a_user_of_an_unserved_or_unknown_hospital_stops_the_portal() -> None:
    users = load_users(DEMO_USERS_FILE)
    problems = check_hospitals(users, ["police-hospital", "no-such-hospital"], {"police-hospital"})
    assert any("no-such-hospital" in p and "registry" in p for p in problems)
    assert any("gangnam-sw" in p for p in problems)
    assert check_hospitals(users, sorted(users.hospitals), set(users.hospitals)) == []


def test_a_plain_text_password_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    path.write_text(
        "users:\n- {username: a, display_name: A, hospital_id: police-hospital, password: secret}\n",
        encoding="utf-8",
    )
    with pytest.raises(UsersFileError, match="never plain text"):
        load_users(path)
