"""The console's sign-in against the running system: failures throttled (429 with
Retry-After, on the API and the sign-in page alike), sign-out revoking the session on
the server, and an old scrypt hash upgraded to Argon2id in the users file at the next
successful sign-in. The unsafe-start refusal runs the console as a process."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import yaml

from services.tools.simulators import accounts
from services.tools.stack import SystemInfo

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def api(system_info: SystemInfo) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=system_info.console, timeout=30) as client:
        yield client


async def test_repeated_failures_for_an_account_are_throttled_with_retry_after(
    api: httpx.AsyncClient,
) -> None:
    account = f"guess-{uuid.uuid4().hex[:8]}"  # unknown: counted all the same
    for _ in range(5):  # the default CARELINK_CONSOLE_SIGNIN_ACCOUNT_LIMIT
        r = await api.post("/api/login", json={"username": account, "password": "wrong-guess"})
        assert r.status_code == 401, r.text
    r = await api.post("/api/login", json={"username": account, "password": "wrong-guess"})
    assert r.status_code == 429, r.text
    assert r.json()["error"] == "too-many-attempts"
    assert 0 < int(r.headers["retry-after"]) <= 900
    # The sign-in page shares the count, and says so in both languages.
    page = await api.post(
        "/login",
        data={"username": account, "password": "wrong-guess", "next": "/"},
        headers={"origin": str(api.base_url).rstrip("/")},
    )
    assert page.status_code == 429
    assert int(page.headers["retry-after"]) > 0
    assert "Too many failed sign-ins" in page.text
    # Another account from the same address is not locked out by this one.
    ok = await api.post("/api/login", json={"username": "songpa", "password": "songpa-demo"})
    assert ok.status_code == 200, ok.text


async def test_sign_out_revokes_the_session_on_the_server(api: httpx.AsyncClient) -> None:
    r = await api.post("/api/login", json={"username": "songpa", "password": "songpa-demo"})
    token = r.json()["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await api.get("/api/me", headers=bearer)).status_code == 200
    assert (await api.post("/api/logout", headers=bearer)).status_code == 204
    after = await api.get("/api/me", headers=bearer)
    assert after.status_code == 401
    assert after.json()["error"] == "unauthorized"

    # The pages' cookie likewise: kept by someone after sign-out, it opens nothing.
    origin = {"origin": str(api.base_url).rstrip("/")}
    page = await api.post(
        "/login",
        data={"username": "songpa", "password": "songpa-demo", "next": "/"},
        headers=origin,
    )
    assert page.status_code == 303
    cookie = page.cookies["carelink_session"]
    api.cookies.clear()
    kept = {"cookie": f"carelink_session={cookie}"}
    assert (await api.get("/api/me", headers=kept)).status_code == 200
    out = await api.post("/logout", headers={**kept, **origin})
    assert out.status_code == 303
    assert (await api.get("/api/me", headers=kept)).status_code == 401


async def test_an_old_scrypt_hash_is_upgraded_to_argon2id_at_the_next_sign_in(
    api: httpx.AsyncClient, staff_setup: accounts.StaffSetup, upgrade_probe: accounts.Account
) -> None:
    def hashes() -> dict[str, str]:
        raw = yaml.safe_load(staff_setup.users_file.read_text(encoding="utf-8"))
        return {u["username"]: u["password"] for u in raw["users"]}

    before = hashes()
    account = upgrade_probe
    assert before[account.username].startswith("scrypt$")
    r = await api.post(
        "/api/login", json={"username": account.username, "password": account.password}
    )
    assert r.status_code == 200, r.text
    after = hashes()
    assert after[account.username].startswith("$argon2id$")
    assert account.password not in staff_setup.users_file.read_text(encoding="utf-8")
    # Only that account's hash changed, and the upgraded one signs in.
    assert {u: h for u, h in after.items() if u != account.username} == {
        u: h for u, h in before.items() if u != account.username
    }
    again = await api.post(
        "/api/login", json={"username": account.username, "password": account.password}
    )
    assert again.status_code == 200


def test_outside_a_local_run_the_console_refuses_demo_accounts_and_no_key() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARELINK_")}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run(
        [sys.executable, "-m", "services.console"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "refusing to start outside a local run (CARELINK_ENV=local)" in done.stderr
    assert "CARELINK_CONSOLE_SECRET_KEY is not set" in done.stderr
    assert "demo accounts" in done.stderr
    assert "songpa" in done.stderr
