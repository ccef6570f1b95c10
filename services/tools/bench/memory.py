"""Peak resident memory of each service process (and of the broker and PostgreSQL,
for context), sampled every half second in a thread while the phases run; and,
from the same samples, the CPU seconds each process used per phase (where the
time goes on a machine whose cores everything shares)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import psutil  # type: ignore[import-untyped]

MB = 1024 * 1024


def cpu_seconds(pid: int, *, with_children: bool = False) -> float | None:
    """User + system CPU seconds so far (with the current children's, for PostgreSQL)."""
    try:
        process = psutil.Process(pid)
        times = process.cpu_times()
        total = float(times.user + times.system)
        if with_children:
            for child in process.children(recursive=True):
                try:
                    t = child.cpu_times()
                    total += float(t.user + t.system)
                except psutil.Error:
                    continue
        return total
    except psutil.Error:
        return None


def _machine_busy() -> float:
    times = psutil.cpu_times()
    idle = float(times.idle) + float(getattr(times, "iowait", 0.0))
    return float(sum(times)) - idle


def rss_mb(pid: int, *, with_children: bool = False) -> float | None:
    """Resident set size in MB; with_children adds the children's (PostgreSQL's backends)."""
    try:
        process = psutil.Process(pid)
        total = process.memory_info().rss
        if with_children:
            for child in process.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:
                    continue
        return float(total) / MB
    except psutil.Error:
        return None


class MemorySampler:
    """`pids()` says what to sample now: name -> (pid, with_children). Peaks are kept
    overall and per phase (`phase(name)` switches)."""

    def __init__(
        self, pids: Callable[[], dict[str, tuple[int, bool]]], interval: float = 0.5
    ) -> None:
        self._pids = pids
        self._interval = interval
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._phase = "start"
        self.peak: dict[str, float] = {}
        self.by_phase: dict[str, dict[str, float]] = {}
        self.cpu_by_phase: dict[str, dict[str, float]] = {}
        # The whole machine's busy CPU seconds per phase: with the per-process figures,
        # this shows how much of the machine something outside the benchmark took.
        self.machine_busy: dict[str, float] = {}
        self._machine_last: float | None = None
        self._cpu_last: dict[tuple[str, int], float] = {}
        self.samples = 0
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def phase(self, name: str) -> None:
        with self._lock:
            self._phase = name

    def sample(self) -> None:
        try:
            targets = self._pids()
        except Exception:
            return
        with self._lock:
            phase = self.by_phase.setdefault(self._phase, {})
            cpu = self.cpu_by_phase.setdefault(self._phase, {})
            busy = _machine_busy()
            if self._machine_last is not None:
                self.machine_busy[self._phase] = self.machine_busy.get(self._phase, 0.0) + max(
                    0.0, busy - self._machine_last
                )
            self._machine_last = busy
            for name, (pid, with_children) in targets.items():
                mb = rss_mb(pid, with_children=with_children)
                if mb is None:
                    continue
                self.peak[name] = max(self.peak.get(name, 0.0), mb)
                phase[name] = max(phase.get(name, 0.0), mb)
                used = cpu_seconds(pid, with_children=with_children)
                if used is not None:
                    last = self._cpu_last.get((name, pid))
                    if last is not None:
                        # Exited children make the sum drop; never count that as negative.
                        cpu[name] = cpu.get(name, 0.0) + max(0.0, used - last)
                    self._cpu_last[(name, pid)] = used
            self.samples += 1

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.sample()
