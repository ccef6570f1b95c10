"""Child server processes: spawn, wait until ready, stop, and never leave orphans."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import datetime
import logging
import os
import pwd
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from services.tools.localinfra.infrastructure import InfrastructureError

log = logging.getLogger(__name__)

T = TypeVar("T")

_PR_SET_PDEATHSIG = 1
_PROBE_TIMEOUT = 5.0
# Loaded before any fork: the preexec hook must do as little as possible in the child.
_libc: ctypes.CDLL | None = None
if sys.platform == "linux":
    with contextlib.suppress(OSError):
        _libc = ctypes.CDLL(None, use_errno=True)

# Every started process until it is stopped, so an interpreter exit stops what a
# caller forgot (pytest interrupted mid-setup, an exception before the fixture's yield).
_live: dict[int, ServerProcess] = {}
_live_lock = threading.Lock()


class ServerExited(InfrastructureError):
    """The server process ended before it became ready."""

    def __init__(self, message: str, *, port_in_use: bool) -> None:
        super().__init__(message)
        self.port_in_use = port_in_use


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now (racy: retry on bind errors)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _death_signal_hook(sig: int) -> Callable[[], None] | None:
    """A preexec hook that makes the kernel signal the child when we die.

    PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, not the
    process; a child spawned from a worker thread would be killed when that thread
    ends, so only children spawned from the main thread get it. The kernel clears
    the setting on a uid change, and subprocess switches uid before running the
    hook, so it also holds for servers that run as an unprivileged user.
    """
    libc = _libc
    if libc is None or threading.current_thread() is not threading.main_thread():
        return None
    parent = os.getpid()

    def hook() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        # The parent may have died between fork and prctl; then nobody would signal us.
        if os.getppid() != parent:
            os._exit(1)

    return hook


class ServerProcess:
    """One long-running server with its output appended to a log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        cwd: Path,
        env: Mapping[str, str],
        user: pwd.struct_passwd | None = None,
        stop_signal: int = signal.SIGINT,
        death_signal: int = signal.SIGKILL,
        stop_timeout: float = 15.0,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.cwd = cwd
        self.env = dict(env)
        self.user = user
        self.stop_signal = stop_signal
        self.death_signal = death_signal
        self.stop_timeout = stop_timeout
        self._popen: subprocess.Popen[bytes] | None = None
        self._stop_sent = False

    def start(self) -> None:
        if self.running:
            raise InfrastructureError(f"{self.name} is already running (pid {self.pid})")
        with self.log_path.open("ab") as logfile:
            stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
            logfile.write(f"--- {stamp} starting: {' '.join(self.argv)}\n".encode())
            logfile.flush()
            self._stop_sent = False
            self._popen = subprocess.Popen(  # noqa: S603 - argv is built by this package
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=logfile,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                env=self.env,
                # Group and supplementary groups too: dropping only the uid would
                # leave a root-started server in group root.
                user=self.user.pw_uid if self.user is not None else None,
                group=self.user.pw_gid if self.user is not None else None,
                extra_groups=[] if self.user is not None else None,
                # Own process group: a Ctrl-C meant for the parent must not reach the
                # servers before the parent has stopped its clients in order.
                process_group=0,
                preexec_fn=_death_signal_hook(self.death_signal),
                close_fds=True,
            )
        with _live_lock:
            _live[self._popen.pid] = self
        log.info("started %s pid=%s log=%s", self.name, self._popen.pid, self.log_path)

    @property
    def pid(self) -> int:
        if self._popen is None:
            raise InfrastructureError(f"{self.name} was never started")
        return self._popen.pid

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def send_signal(self, sig: int) -> None:
        # `running` already says _popen is set; checked again for the type checker.
        if self.running and self._popen is not None:
            self._popen.send_signal(sig)

    def raise_if_exited(self, what: str, port_hint: int | None = None) -> None:
        if self._popen is None or self._popen.poll() is None:
            return
        tail = self.log_tail()
        lowered = tail.lower()
        port_in_use = "address already in use" in lowered or "addrinuse" in lowered
        hint = f" (port {port_hint} taken)" if port_in_use and port_hint else ""
        raise ServerExited(
            f"{what} exited with code {self._popen.returncode} before it was ready{hint}; "
            f"last lines of {self.log_path}:\n{tail}",
            port_in_use=port_in_use,
        )

    def begin_stop(self) -> None:
        """Ask the server to stop without waiting, so several can shut down at once."""
        # `running` already says _popen is set; checked again for the type checker.
        if self.running and not self._stop_sent and self._popen is not None:
            self._popen.send_signal(self.stop_signal)
            # A frozen (SIGSTOPped) process would never act on the signal.
            self._popen.send_signal(signal.SIGCONT)
            self._stop_sent = True

    def stop(self) -> None:
        """Stop with the server's graceful signal, then SIGKILL after stop_timeout."""
        popen = self._popen
        if popen is None:
            return
        try:
            self.begin_stop()
            try:
                popen.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                log.warning(
                    "%s pid=%s ignored signal %s for %.0fs; killing it",
                    self.name,
                    popen.pid,
                    self.stop_signal,
                    self.stop_timeout,
                )
                popen.kill()
                popen.wait(10)
            log.info("stopped %s pid=%s rc=%s", self.name, popen.pid, popen.returncode)
        finally:
            with _live_lock:
                _live.pop(popen.pid, None)

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)


def log_tail(path: Path, lines: int = 40) -> str:
    """The last lines of a server log, for error messages."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 16_384))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:])


def _stop_all_at_exit() -> None:
    with _live_lock:
        procs = list(_live.values())
    for proc in reversed(procs):
        try:
            proc.stop()
        except Exception:  # an exit hook must try every process
            log.exception("could not stop %s at exit", proc.name)


atexit.register(_stop_all_at_exit)


def run_blocking(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from synchronous code, even inside a running loop.

    start_infrastructure is synchronous but may be called from an async fixture or
    test; asyncio.run refuses to nest, so then the coroutine gets its own thread.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="localinfra") as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


async def wait_ready(
    probe: Callable[[], Awaitable[None]],
    *,
    what: str,
    within: float,
    process: ServerProcess | None = None,
    port: int | None = None,
) -> None:
    """Call probe until it returns without raising (for up to `within` seconds).

    Fails at once, with the log tail, if the server process dies meanwhile. The
    process is watched while a probe runs too: when a stranger holds our port the
    probe can hang on it for seconds, while our server exits within milliseconds.
    """
    deadline = time.monotonic() + within
    last_error: BaseException | None = None
    while True:
        attempt = asyncio.ensure_future(probe())
        attempt_deadline = min(deadline, time.monotonic() + _PROBE_TIMEOUT)
        try:
            while not attempt.done() and time.monotonic() < attempt_deadline:
                if process is not None:
                    process.raise_if_exited(what, port)
                await asyncio.wait({attempt}, timeout=0.05)
        finally:
            if not attempt.done():
                attempt.cancel()
                await asyncio.gather(attempt, return_exceptions=True)
        if attempt.cancelled():
            last_error = TimeoutError(f"probe took longer than {_PROBE_TIMEOUT:.0f}s")
        elif (error := attempt.exception()) is not None:
            last_error = error  # every failure means "not ready yet" until the deadline
        else:
            if process is not None:
                # A stranger on our port could have answered; our server dying now says so.
                process.raise_if_exited(what, port)
            return
        if time.monotonic() >= deadline:
            tail = f"; last lines of {process.log_path}:\n{process.log_tail()}" if process else ""
            raise InfrastructureError(
                f"{what} not ready after {within:.0f}s (last error: {last_error!r}){tail}"
            )
        await asyncio.sleep(0.05)
