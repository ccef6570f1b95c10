"""Outside a local run the default signing key and demo accounts are refused."""

from __future__ import annotations

import pytest

from services.lib.signin import (
    hash_password_sync,
    is_local_run,
    refuse_unsafe_start,
    unsafe_start_problems,
)

DEMO = {"songpa": "songpa-demo"}


def problems(key: str | None, hashes: dict[str, str]) -> list[str]:
    return unsafe_start_problems(
        secret_key=key,
        default_keys=["change-me-dev-only"],
        password_hashes=hashes,
        demo_passwords=DEMO,
        key_setting="KEY",
        users_setting="USERS",
    )


def test_only_carelink_env_local_is_a_local_run() -> None:
    assert is_local_run({"CARELINK_ENV": "local"})
    assert is_local_run({"CARELINK_ENV": " Local "})
    assert not is_local_run({})
    assert not is_local_run({"CARELINK_ENV": "production"})
    assert not is_local_run({"CARELINK_ENV": "dev"})


def test_a_missing_default_or_short_key_is_a_problem() -> None:
    assert "not set" in problems(None, {})[0]
    assert "published default" in problems("change-me-dev-only", {})[0]
    assert "shorter" in problems("short", {})[0]
    assert problems("r" * 32, {}) == []


def test_an_account_accepting_its_published_demo_password_is_a_problem() -> None:
    found = problems("r" * 40, {"songpa": hash_password_sync("songpa-demo")})
    assert len(found) == 1
    assert "songpa" in found[0]
    # The same username with a password of its own is a real account.
    assert problems("r" * 40, {"songpa": hash_password_sync("a-real-secret-pw")}) == []


def test_refusing_exits_with_code_2_naming_each_problem(capsys: pytest.CaptureFixture[str]) -> None:
    refuse_unsafe_start("console", [])  # nothing to refuse: returns
    with pytest.raises(SystemExit) as exited:
        refuse_unsafe_start("console", ["KEY is not set", "USERS holds demo accounts"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "carelink console" in err
    assert "KEY is not set" in err
    assert "demo accounts" in err
