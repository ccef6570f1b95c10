"""`python -m services.tools.bench` (`make bench`): measure, stop everything, write the report.

Phases, all in one run on one broker and one PostgreSQL:

1. raw: aiokafka producer → broker → reader, and asyncpg inserts (the limit);
2. intake, batched consumers (the default): maximum rate, then latency at half of it;
3. the whole loop with instant simulated staff (through the console's HTTP API);
4. intake again with one commit per message (CARELINK_CONSUMER_BATCH_SIZE=1), with
   its own, smaller count (--naive-referrals): compared per referral, not in total;
5. scale: every service's store bulk-loaded with --scale-cases cases, intake again
   (maximum rate and the paced latency run, as in 2);
6. memory: peak RSS of each service, sampled throughout.

The infrastructure comes from the same picker as the tests (`services.tools.localinfra`:
explicit settings, else Docker, else the embedded Tansu broker and PostgreSQL).
It is started once and handed to each `LocalSystem`, so the raw limit is measured
on the very broker and database the services then use, and the services can be
restarted with other settings (batch size 1) on the same data: consumer groups and
databases keep their names (one prefix per run), so a restarted system carries on
from its committed offsets instead of re-reading every earlier phase's records.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import psutil  # type: ignore[import-untyped]

from services.lib.policy import load_registry
from services.lib.runtime.logging import configure_logging
from services.lib.runtime.settings import REPO_ROOT
from services.tools.bench.flame import where_time_goes
from services.tools.bench.intake import run_intake
from services.tools.bench.loop import LOOP_DISTRICTS, run_loop
from services.tools.bench.memory import MemorySampler, cpu_seconds
from services.tools.bench.plot import plot
from services.tools.bench.progress import say
from services.tools.bench.queue import QUEUE_DISTRICT, QUEUE_PROCESSES, run_queue
from services.tools.bench.raw import kafka_limit, postgres_limit
from services.tools.bench.report import (
    chaos_summary,
    evaluate_targets,
    render_markdown,
    targets_as_dicts,
)
from services.tools.bench.scale import load_store
from services.tools.bench.traffic import Referrals
from services.tools.localinfra import Infrastructure, start_infrastructure
from services.tools.simulators.accounts import StaffSetup, centres_for, prepare
from services.tools.simulators.referrals import FakeHospital
from services.tools.stack import LocalSystem
from services.tools.stack.deployables import SERVICES

T = TypeVar("T")

BASELINE = REPO_ROOT / "docs" / "bench" / "before-sets.json"
CHAOS_RESULT = REPO_ROOT / "docs" / "chaos" / "result.json"

FULL = {
    "referrals": 20_000,
    # One commit per message runs at a third of the batched rate: 20,000 took 22 of a
    # full run's 43 minutes. Its figures are per referral, so fewer compare as well.
    "naive_referrals": 3_000,
    "scale_cases": 1_000_000,
    "loop_referrals": 2_000,
    "raw_messages": 50_000,
    "latency_seconds": 30.0,
}
QUICK = {
    "referrals": 2_000,
    "naive_referrals": 2_000,
    "scale_cases": 50_000,
    "loop_referrals": 300,
    "raw_messages": 10_000,
    "latency_seconds": 10.0,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m services.tools.bench",
        description="Benchmark carelink on this machine: raw broker and PostgreSQL limits, "
        "intake throughput and latency (batched and one commit per message), the whole loop "
        "with instant simulated staff, intake over a store of many cases, and the services' "
        "memory. Starts and stops its own infrastructure (the same picker as the tests) and "
        "writes result.json, result.md and result.png.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a short run for trying it out (2,000 referrals, 50,000 stored cases)",
    )
    parser.add_argument(
        "--referrals",
        type=int,
        help=f"referrals in each intake run (default {FULL['referrals']:,}; quick {QUICK['referrals']:,})",
    )
    parser.add_argument(
        "--naive-referrals",
        type=int,
        help="referrals in the intake run with one commit per message (default "
        f"{FULL['naive_referrals']:,}; quick {QUICK['naive_referrals']:,}); it is compared with "
        "the batched run by rate and CPU per referral, so the counts need not match",
    )
    parser.add_argument(
        "--scale-cases",
        type=int,
        help=f"cases bulk-loaded before the scale run (default {FULL['scale_cases']:,}; "
        f"quick {QUICK['scale_cases']:,}; 0 skips the scale phase)",
    )
    parser.add_argument(
        "--loop-referrals",
        type=int,
        help=f"referrals taken through the whole loop (default {FULL['loop_referrals']:,}; "
        f"quick {QUICK['loop_referrals']:,})",
    )
    parser.add_argument(
        "--raw-messages",
        type=int,
        help=f"records in the raw broker round trip (default {FULL['raw_messages']:,}; "
        f"quick {QUICK['raw_messages']:,})",
    )
    parser.add_argument(
        "--latency-seconds",
        type=float,
        help="how long each paced latency run lasts (default 30; quick 10)",
    )
    parser.add_argument(
        "--queue-tasks",
        type=int,
        default=100_000,
        help="open tasks seeded in one centre before /api/queue is timed (default 100,000; "
        "0 skips the queue phase)",
    )
    parser.add_argument(
        "--scale-inbox-per-case",
        type=int,
        default=4,
        help="inbox rows per stored case in every service's database (default 4)",
    )
    parser.add_argument(
        "--staff-concurrency",
        type=int,
        default=32,
        help="simulated coordinators in the whole loop, spread over its centres, each signed "
        "in to the console with its own account and working one task at a time (default 32)",
    )
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=["raw", "intake", "loop", "naive", "scale", "queue"],
        help="leave a phase out (repeatable)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="record py-spy profiles (collapsed stacks) of every service during the batched "
        "intake maximum-rate run into this directory (needs py-spy)",
    )
    parser.add_argument(
        "--flame",
        action="store_true",
        help="record a py-spy flame graph (SVG) of every service during the batched intake "
        "maximum-rate run into <out>/flame/ (needs py-spy and ptrace rights: root, or "
        "kernel.yama.ptrace_scope 0)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where result.json, result.md and result.png go (default docs/bench, "
        "docs/bench/quick with --quick, so a quick run never replaces the full run's figures)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        default=BASELINE,
        help='an earlier result.json to compare with in result.md\'s "before vs after" '
        "table (default docs/bench/before-sets.json, the full run before the set-based "
        "work; ignored if the file is missing)",
    )
    parser.add_argument(
        "--chaos-result",
        type=Path,
        default=CHAOS_RESULT,
        help="the `make chaos` result whose verdict the report shows as the chaos target "
        "(default docs/chaos/result.json; the benchmark does not run chaos itself; "
        '"not measured" if the file is missing)',
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the data and service logs after the run"
    )
    args = parser.parse_args(argv)
    defaults = QUICK if args.quick else FULL
    full_run = REPO_ROOT / "docs" / "bench"
    if args.out is None:
        args.out = full_run / "quick" if args.quick else full_run
    elif args.quick and args.out.resolve() == full_run.resolve():
        # The committed full run's figures are what the README quotes: a quick run's
        # smaller counts must never replace them.
        parser.error(f"--quick never writes to {full_run} (the full run's results)")
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.referrals < 100:
        parser.error("--referrals must be at least 100")
    if args.naive_referrals < 100:
        parser.error("--naive-referrals must be at least 100")
    return args


def machine_info() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "ram_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
    }


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.base_dir = Path(tempfile.mkdtemp(prefix="carelink-bench-"))
        self.prefix = f"bench{secrets.token_hex(3)}_"
        self.infra: Infrastructure | None = None
        self.system: LocalSystem | None = None
        # The loop's simulated coordinators: console accounts, made before the system starts.
        self.staff: StaffSetup | None = None
        self.result: dict[str, Any] = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine_info(),
            "settings": {
                "mode": "quick" if args.quick else "full",
                "command": "python -m services.tools.bench" + (" --quick" if args.quick else ""),
                "referrals": args.referrals,
                "naive_referrals": args.naive_referrals,
                "scale_cases": args.scale_cases,
                "loop_referrals": args.loop_referrals,
                "raw_messages": args.raw_messages,
                "latency_seconds": args.latency_seconds,
                "scale_inbox_per_case": args.scale_inbox_per_case,
                "staff_concurrency": args.staff_concurrency,
                "queue_tasks": args.queue_tasks,
                "skipped": sorted(set(args.skip)),
            },
            "timings_s": {},
            "errors": [],
        }
        self.referrals = Referrals(secrets.randbelow(2**31))
        self.hospitals = sorted(load_registry().hospital_ids)
        if len(self.hospitals) < 8:
            raise SystemExit("the registry needs at least 8 hospitals (one per measured run)")
        # One hospital per measured run: each reader sees only its own run's updates.
        self.sample = self.referrals.make(self.hospitals[-1], 1)[0]
        self.sampler = MemorySampler(self._pids)

    # -- plumbing -----------------------------------------------------------------

    def _pids(self) -> dict[str, tuple[int, bool]]:
        pids: dict[str, tuple[int, bool]] = {}
        if self.system is not None:
            for name, process in list(self.system.services.items()):
                if process.pid is not None and process.running():
                    pids[name] = (process.pid, False)
        pids["bench"] = (os.getpid(), False)
        if self.infra is not None:
            if self.infra.broker_pid:
                pids["broker"] = (self.infra.broker_pid, False)
            if self.infra.postgres_pid:
                pids["postgresql"] = (self.infra.postgres_pid, True)
        return pids

    def phase(self, name: str, make: Callable[[], Awaitable[T]], timeout: float) -> T | None:
        """Run one phase bounded by `timeout`; a failure is reported and the run goes on."""
        say(name, "start")
        self.sampler.phase(name)
        started = time.monotonic()

        async def bounded() -> T:
            return await asyncio.wait_for(make(), timeout)

        try:
            return asyncio.run(bounded())
        except Exception as exc:  # one phase failing must not lose the others' figures
            message = f"{name}: {type(exc).__name__}: {exc}"
            self.result["errors"].append(message)
            say(name, f"FAILED: {type(exc).__name__}: {exc}")
            return None
        finally:
            seconds = time.monotonic() - started
            self.result["timings_s"][name] = round(seconds, 1)
            say(name, f"took {seconds:.0f}s")

    def start_system(self, label: str, extra_env: dict[str, str] | None = None) -> LocalSystem:
        if self.infra is None:
            raise RuntimeError("the system starts before the infrastructure")
        say("system", f"starting the four services ({label})")
        self.sampler.phase(f"start services ({label})")
        started = time.monotonic()
        system = LocalSystem(
            self.base_dir / "system",
            infrastructure=self.infra,
            infrastructure_kind=None,
            name_prefix=self.prefix,
            extra_env={**(self.staff.env if self.staff else {}), **(extra_env or {})},
        )
        self.system = system
        system.start()
        self.result["timings_s"][f"start services ({label})"] = round(time.monotonic() - started, 1)
        return system

    def stop_system(self) -> None:
        if self.system is not None:
            say("system", "stopping the services")
            self.system.stop()
            self.system = None

    def prepare_staff(self) -> StaffSetup:
        """`--staff-concurrency` coordinators spread over the loop's centres, each with a
        console account (the console is started with their users file)."""
        centres = centres_for(LOOP_DISTRICTS)
        per_centre = max(1, math.ceil(self.args.staff_concurrency / len(centres)))
        say("staff", f"{per_centre * len(centres)} simulated coordinators' console accounts")
        return prepare(self.base_dir / "staff", centres, per_centre)

    @property
    def console(self) -> str:
        if self.system is None or self.system.info is None:
            raise RuntimeError("the system is not started")
        return self.system.info.console

    @property
    def databases(self) -> dict[str, str]:
        if self.system is None or self.system.info is None:
            raise RuntimeError("the system is not started")
        return dict(self.system.info.databases)

    @property
    def bootstrap(self) -> str:
        if self.infra is None:
            raise RuntimeError("the infrastructure is not started")
        return self.infra.endpoints.kafka_bootstrap

    def _raw_cpu(self) -> float | None:
        """CPU seconds so far of the broker and this process (the raw client)."""
        if self.infra is None or not self.infra.broker_pid:
            return None  # an external broker: its CPU is not ours to read
        broker = cpu_seconds(self.infra.broker_pid)
        client = cpu_seconds(os.getpid())
        return None if broker is None or client is None else broker + client

    def cpu_cost(self, phase: str, items: int) -> dict[str, Any]:
        """CPU the system (services, broker, PostgreSQL; not this process) spent per item
        during `phase`, and the share of the machine that other work took meanwhile.

        On a machine shared with other work the rates fall with the cores left over;
        the CPU per item does not, so `cpu_bound_rate` (cores / CPU per item) says what
        the same work would reach with the cores to itself, if CPU is what limits it.
        """
        used = self.sampler.cpu_by_phase.get(phase, {})
        busy = self.sampler.machine_busy.get(phase)
        system = sum(v for k, v in used.items() if k != "bench")
        if not used or not items or system <= 0:
            return {}
        cores = os.cpu_count() or 1
        cost: dict[str, Any] = {
            "cpu_ms_per_item": system * 1000 / items,
            "cpu_ms_per_item_by_process": {
                k: round(v * 1000 / items, 2) for k, v in used.items() if k != "bench"
            },
            "cpu_bound_rate": cores * items / system,
        }
        if busy:
            cost["outside_cpu_share"] = max(0.0, busy - sum(used.values())) / busy
        return cost

    def intake_run(
        self, label: str, max_hospital: str, latency_hospital: str, count: int | None = None
    ) -> Any:
        """Maximum rate then the paced latency run (`run_intake`), and the CPU per
        referral of the maximum-rate part; `count` defaults to --referrals."""
        count = self.args.referrals if count is None else count
        budget = max(600.0, count / 10)
        result = self._intake_phase(label, max_hospital, latency_hospital, budget, count)
        if result:
            result["cpu"] = self.cpu_cost(f"intake {label}: maximum rate", result["referrals"])
        return result

    def _intake_phase(
        self, label: str, max_hospital: str, latency_hospital: str, budget: float, count: int
    ) -> Any:
        args = self.args
        return self.phase(
            f"intake {label}",
            lambda: run_intake(
                label=label,
                bootstrap=self.bootstrap,
                databases=self.databases,
                referrals=self.referrals,
                max_hospital=max_hospital,
                latency_hospital=latency_hospital,
                count=count,
                latency_seconds=args.latency_seconds,
                timeout=budget,
                mark=self.sampler.phase,
            ),
            timeout=3 * budget,
        )

    # -- the run ------------------------------------------------------------------

    def run(self) -> None:
        args = self.args
        h = self.hospitals
        skip = set(args.skip)
        say("infra", f"starting the broker and PostgreSQL under {self.base_dir}")
        self.infra = start_infrastructure(self.base_dir / "infra", kind=None, keep_data=False)
        self.result["machine"]["infrastructure"] = self.infra.endpoints.kind
        say("infra", f"{self.infra.endpoints.kind}: Kafka at {self.bootstrap}")
        self.sampler.start()
        submission = json.loads(self.sample.value)

        if "raw" not in skip:
            kafka = self.phase(
                "raw kafka",
                lambda: kafka_limit(
                    self.bootstrap,
                    self.sample,
                    args.raw_messages,
                    topic=f"bench.{self.prefix.rstrip('_')}.raw",
                    latency_seconds=args.latency_seconds,
                    timeout=300,
                    cpu_probe=self._raw_cpu,
                ),
                timeout=900,
            )
            if self.infra is None:
                raise RuntimeError("the infrastructure is not started")
            postgres = self.phase(
                "raw postgres",
                lambda: postgres_limit(
                    self.infra.endpoints.postgres_url,  # type: ignore[union-attr]
                    f"{self.prefix}raw",
                    submission,
                    rows=max(5_000, args.referrals),
                    single_rows=min(5_000, args.referrals),
                ),
                timeout=600,
            )
            self.result["raw"] = {"kafka": kafka, "postgres": postgres}

        if not skip >= {"intake", "loop"}:
            if "loop" not in skip:
                self.staff = self.prepare_staff()
            self.start_system("batched")
            profilers = []
            if args.profile:
                profilers += self._start_profilers(args.profile, "raw", "txt")
            if args.flame:
                profilers += self._start_profilers(args.out / "flame", "flamegraph", "svg")
            if "intake" not in skip:
                batched = self.intake_run("batched", h[0], h[1])
                self.result.setdefault("intake", {})["batched"] = batched
            self._stop_profilers(profilers)
            if args.flame:
                self.result["flame"] = self._flame_summary(args.out / "flame")
            if "loop" not in skip:
                self.result["loop"] = self.phase(
                    "whole loop",
                    lambda: run_loop(
                        bootstrap=self.bootstrap,
                        console=self.console,
                        accounts=self.staff.accounts if self.staff else [],
                        databases=self.databases,
                        referrals=self.referrals,
                        hospital_id=h[2],
                        count=args.loop_referrals,
                        timeout=max(600.0, args.loop_referrals / 2),
                    ),
                    timeout=max(900.0, args.loop_referrals),
                )
                if self.result["loop"]:
                    self.result["loop"]["cpu"] = self.cpu_cost(
                        "whole loop", self.result["loop"]["completed"]
                    )
            self.stop_system()

        if "naive" not in skip:
            self.start_system("one commit per message", {"CARELINK_CONSUMER_BATCH_SIZE": "1"})
            naive = self.intake_run("naive", h[3], h[4], args.naive_referrals)
            self.result.setdefault("intake", {})["naive"] = naive
            self.stop_system()

        if "scale" not in skip and args.scale_cases > 0:
            # The services' databases exist (and are migrated) once a system has started.
            if self.system is None and not self._databases_exist():
                self.start_system("migrate")
                self.stop_system()
            databases = self._database_urls()
            scale: dict[str, Any] = {"cases": args.scale_cases}
            self.result["scale"] = scale
            scale["load"] = self.phase(
                "scale load",
                lambda: load_store(
                    databases,
                    cases=args.scale_cases,
                    inbox_per_case=args.scale_inbox_per_case,
                    submission=submission,
                ),
                timeout=max(1800.0, args.scale_cases / 200),
            )
            if scale["load"] is not None:
                self.start_system("batched, loaded store")
                scale["intake"] = self.intake_run("scale", h[5], h[6])
                self.stop_system()
                empty = (self.result.get("intake") or {}).get("batched") or {}
                if scale["intake"] and empty.get("rate"):
                    scale["ratio"] = scale["intake"]["rate"] / empty["rate"]

        if "queue" not in skip and args.queue_tasks > 0:
            self.result["queue"] = self.queue_run()

        if "raw" not in skip:
            # The broker keeps every record in memory: measured again at the end, the
            # limit shows whether the broker itself slowed down over the run.
            again = self.phase(
                "raw kafka again",
                lambda: kafka_limit(
                    self.bootstrap,
                    self.sample,
                    args.raw_messages,
                    topic=f"bench.{self.prefix.rstrip('_')}.raw-end",
                    latency_seconds=args.latency_seconds,
                    timeout=300,
                    cpu_probe=self._raw_cpu,
                ),
                timeout=900,
            )
            self.result.setdefault("raw", {})["kafka_at_end"] = again

    def queue_run(self) -> Any:
        """The console's queue with `--queue-tasks` open tasks in one centre, timed
        through /api/queue by a coordinator of that centre (services/tools/bench/queue.py)."""
        centre = centres_for([QUEUE_DISTRICT])[0]
        staff = prepare(self.base_dir / "queue-staff", [centre], 1)
        self.start_system("queue", staff.env)
        hospital = FakeHospital(self.hospitals[7], seed=7)
        # A thousand fake patients of the centre's district, reused: cards need no more.
        patients = [hospital.submission(district=QUEUE_DISTRICT) for _ in range(1000)]
        try:
            return self.phase(
                "console queue",
                lambda: run_queue(
                    self.console,
                    self.databases,
                    staff.accounts[0],
                    tasks=self.args.queue_tasks,
                    hospitals=self.hospitals,
                    submission=lambda i: patients[i % len(patients)],
                    pids={n: pid for n, (pid, _) in self._pids().items() if n in QUEUE_PROCESSES},
                ),
                timeout=max(900.0, self.args.queue_tasks / 50),
            )
        finally:
            self.stop_system()

    def _databases_exist(self) -> bool:
        return (self.base_dir / "system" / "system.json").exists()

    def _database_urls(self) -> dict[str, str]:
        info = json.loads((self.base_dir / "system" / "system.json").read_text())
        return {s: info["databases"][s] for s in SERVICES}

    def _start_profilers(self, out: Path, fmt: str, ext: str) -> list[subprocess.Popen[bytes]]:
        """py-spy on every service until `_stop_profilers`: `fmt` raw (collapsed stacks)
        or flamegraph (SVG), one `<service>.<ext>` each in `out`."""
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if not Path(spy).exists():
            say("profile", "py-spy not found (pip install py-spy); not profiling")
            return []
        if self.system is None:
            raise RuntimeError("profiling before the system is started")
        out.mkdir(parents=True, exist_ok=True)
        profilers = []
        for name, process in self.system.services.items():
            profilers.append(
                subprocess.Popen(  # noqa: S603
                    [
                        spy,
                        "record",
                        "--pid",
                        str(process.pid),
                        "--rate",
                        "97",
                        "--format",
                        fmt,
                        "--output",
                        str(out / f"{name}.{ext}"),
                        "--nonblocking",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        say("profile", f"py-spy recording every service into {out}")
        return profilers

    def _flame_summary(self, folder: Path) -> dict[str, dict[str, float]]:
        """{service: {category: share of its busy samples}} from the flame graphs."""
        summary = {}
        for svg in sorted(folder.glob("*.svg")):
            summary[svg.stem] = {
                k: round(v, 4) for k, v in where_time_goes(svg.read_text()).items()
            }
        return summary

    def _stop_profilers(self, profilers: list[subprocess.Popen[bytes]]) -> None:
        for p in profilers:
            p.send_signal(signal.SIGINT)
        for p in profilers:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()

    def finish(self) -> None:
        self.sampler.stop()
        others = ("broker", "postgresql", "bench")
        self.result["memory"] = {
            # Every process of the system (the four services and the console).
            "peak_mb": {k: round(v, 1) for k, v in self.sampler.peak.items() if k not in others},
            "infrastructure_peak_mb": {
                k: round(v, 1) for k, v in self.sampler.peak.items() if k in others
            },
            "by_phase": {
                phase: {k: round(v, 1) for k, v in peaks.items()}
                for phase, peaks in self.sampler.by_phase.items()
                if peaks
            },
            "cpu_seconds_by_phase": {
                phase: {k: round(v, 1) for k, v in used.items()}
                for phase, used in self.sampler.cpu_by_phase.items()
                if used
            },
            "machine_busy_cpu_seconds_by_phase": {
                phase: round(v, 1) for phase, v in self.sampler.machine_busy.items()
            },
            "samples": self.sampler.samples,
            "interval_s": 0.5,
        }
        self.result["chaos"] = chaos_summary(
            _read_json(self.args.chaos_result), _shown(self.args.chaos_result)
        )
        baseline = _read_json(self.args.baseline)
        if baseline is not None:
            self.result["settings"]["baseline"] = _shown(self.args.baseline)
        targets = evaluate_targets(self.result)
        self.result["targets"] = targets_as_dicts(targets)
        out: Path = self.args.out
        out.mkdir(parents=True, exist_ok=True)
        (out / "result.json").write_text(
            json.dumps(_finite(self.result), indent=2, ensure_ascii=False) + "\n"
        )
        (out / "result.md").write_text(render_markdown(self.result, targets, baseline))
        try:
            plot(self.result, out / "result.png")
        except Exception as exc:  # the numbers matter more than the picture
            say("report", f"could not draw result.png: {exc}")
        say("report", f"written {out / 'result.md'}, result.json, result.png")
        for t in targets:
            say("target", f"{t.name}: {t.verdict} ({t.measured})")

    def cleanup(self) -> None:
        self.stop_system()
        if self.infra is not None:
            say("infra", "stopping the broker and PostgreSQL")
            self.infra.stop()
            self.infra = None
        if self.args.keep or self.result["errors"]:
            say("cleanup", f"data and logs kept in {self.base_dir}")
        else:
            shutil.rmtree(self.base_dir, ignore_errors=True)


def _read_json(path: Path) -> Any:
    """The JSON in `path`, or None when it is missing or unreadable (said on stderr)."""
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        say("report", f"could not read {path}: {exc}")
        return None


def _shown(path: Path) -> str:
    """`path` relative to the repository when it is inside it (for the report)."""
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(REPO_ROOT))
    return str(path)


def _finite(value: Any) -> Any:
    """JSON without NaN (not valid JSON): NaN becomes null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Only problems from the libraries' own logging here: progress has its own lines.
    configure_logging(service="bench", level="WARNING", fmt="console")
    bench = Bench(args)
    started = time.monotonic()
    # SIGTERM ends the run like Ctrl-C: through the finally below, which stops everything.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        bench.run()
    except KeyboardInterrupt:
        bench.result["errors"].append("interrupted")
        say("bench", "interrupted; stopping everything")
    except Exception as exc:
        bench.result["errors"].append(f"{type(exc).__name__}: {exc}")
        say("bench", f"FAILED: {type(exc).__name__}: {exc}")
    finally:
        bench.result["timings_s"]["total"] = round(time.monotonic() - started, 1)
        try:
            bench.cleanup()
        finally:
            bench.finish()
    return 1 if bench.result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
