"""The console's start-up check: which configurations it refuses outside a local run."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.console.__main__ import refuse_unsafe
from services.console.settings import ConsoleSettings
from services.lib.signin import hash_password_sync

REAL_KEY = "a-long-random-value-of-this-deployment-0123456789"


def users_file(tmp_path: Path, username: str, password: str) -> Path:
    path = tmp_path / "users.yaml"
    path.write_text(
        "version: 1\nusers:\n"
        f"- username: {username}\n  display_name: Kim\n  centre_id: centre-songpa-gu\n"
        f"  role: coordinator\n  password: {hash_password_sync(password)}\n",
        encoding="utf-8",
    )
    return path


def settings(**values: object) -> ConsoleSettings:
    return ConsoleSettings.model_validate(values)


def test_a_deployment_with_its_own_key_and_accounts_starts(tmp_path: Path) -> None:
    refuse_unsafe(
        settings(secret_key=REAL_KEY, users_file=users_file(tmp_path, "kim", "kims-own-pw"))
    )


def test_the_published_key_is_refused_with_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        refuse_unsafe(
            settings(
                secret_key="change-me-dev-only",
                users_file=users_file(tmp_path, "kim", "kims-own-pw"),
            )
        )
    assert exited.value.code == 2
    assert "published default" in capsys.readouterr().err


def test_a_demo_password_copied_into_a_real_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        refuse_unsafe(
            settings(
                secret_key=REAL_KEY, users_file=users_file(tmp_path, "gangnam", "gangnam-demo")
            )
        )
    assert "gangnam" in capsys.readouterr().err


def test_a_local_run_allows_the_demo_accounts_and_no_key() -> None:
    refuse_unsafe(settings(CARELINK_ENV="local"))


def test_a_users_file_that_does_not_load_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        refuse_unsafe(settings(secret_key=REAL_KEY, users_file=tmp_path / "missing.yaml"))


def test_an_empty_key_is_not_a_key(tmp_path: Path) -> None:
    # compose passes an unset CONSOLE_SECRET_KEY through as an empty value.
    with pytest.raises(SystemExit):
        refuse_unsafe(
            settings(secret_key="", users_file=users_file(tmp_path, "kim", "kims-own-pw"))
        )
