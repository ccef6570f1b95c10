"""`carelink simulate …`: a simulated hospital, simulated coordinators, or both.

    carelink simulate hospital --rate 5 --count 100 --hospital police-hospital
    carelink simulate staff --delay 0.2 2            # until Ctrl-C
    carelink simulate demo --count 30 --instant      # both, with a live progress display

Also `python -m services.tools.simulators {hospital,staff,demo} …`. System addresses come
from `.local/run/system.json` (written by `make run`) or `--system FILE`.

The coordinators sign in to the console (its /api, as people do) with the accounts in
`staff-accounts.json` beside system.json (`make run` makes one simulated coordinator
account per centre or more), or `--accounts FILE`; without either, as the demo
coordinators of deploy/config/users.yaml (Songpa-gu and Gangnam-gu only).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import signal
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from services.lib.runtime.settings import REPO_ROOT
from services.tools.simulators.accounts import ACCOUNTS_FILE, DEMO_ACCOUNTS, Account, load_accounts
from services.tools.simulators.console_client import SignInRefused, Unavailable
from services.tools.simulators.hospital import HospitalStats, run_hospital
from services.tools.simulators.scenario import KINDS, TERMINAL, Board, Mix
from services.tools.simulators.staff_loop import DEFAULT_DELAY, StaffStats, run_staff
from services.tools.stack.system import SystemInfo

DEFAULT_SYSTEM_FILE = REPO_ROOT / ".local" / "run" / "system.json"
# The services' way from ordered to delivered, as the hospital hears it (referrals that
# reached each step, and the median time from submission).
DELIVERY_STEPS = ("services-ordered", "services-started", "services-delivered")
STATUS_ORDER = (
    "received",
    "accepted",
    "in-progress",
    "on-hold",
    "completed",
    "cancelled",
    "failed",
    "rejected",
)


class UsageError(Exception):
    pass


# -- argument parsing ---------------------------------------------------------------


def register(subparsers: Any) -> None:
    """Add `simulate {hospital,staff,demo}` to a CLI's subparsers (each sets `func`)."""
    simulate = subparsers.add_parser(
        "simulate",
        help="simulated hospitals and coordinators: load, demos, checks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_commands(simulate.add_subparsers(dest="simulate_command", metavar="COMMAND", required=True))


def add_commands(subparsers: Any) -> None:
    """The three commands, for `register` and for `python -m services.tools.simulators`."""
    hospital = subparsers.add_parser(
        "hospital",
        help="submit scripted referrals and follow them up as a hospital would",
        description="Submit COUNT scripted referrals at RATE per second, send each "
        "script's follow-ups (discharge, postponement, readmission, cancellation) as "
        "the updates come back, and report statuses, timings, gaps and dead letters.",
    )
    _system_arg(hospital)
    _hospital_args(hospital)
    hospital.add_argument(
        "--timeout", type=float, default=600.0, help="give up after this many seconds"
    )
    hospital.set_defaults(func=hospital_command)

    staff = subparsers.add_parser(
        "staff",
        help="coordinators working every centre's queue until Ctrl-C",
        description="Claim and complete every centre's live tasks with plausible delays "
        "(eligible, visits done, the default care plan), until Ctrl-C or --duration.",
    )
    _system_arg(staff)
    _staff_args(staff)
    staff.add_argument("--duration", type=float, default=None, help="stop after N seconds")
    staff.set_defaults(func=staff_command)

    demo = subparsers.add_parser(
        "demo",
        help="hospital and coordinators together, with a live progress display",
        description="Run the hospital and the coordinators in one process: the "
        "coordinators follow each referral's script. Stops once COUNT referrals are "
        "terminal, or after --timeout.",
    )
    _system_arg(demo)
    _hospital_args(demo)
    _staff_args(demo)
    demo.add_argument(
        "--timeout", type=float, default=300.0, help="give up after this many seconds"
    )
    demo.set_defaults(func=demo_command)


def _system_arg(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: a CLI that has these options on its top level (before the command name)
    # keeps their values; `_system_file` and `_json` supply the defaults.
    parser.add_argument(
        "--system",
        type=Path,
        default=argparse.SUPPRESS,
        metavar="FILE",
        help="the system's addresses (default: .local/run/system.json from `make run`)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print the final statistics as JSON at the end",
    )


def _system_file(args: argparse.Namespace) -> Path:
    path: Path | None = getattr(args, "system", None)
    return path or DEFAULT_SYSTEM_FILE


def _json(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "json", False))


def _hospital_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hospital", default="police-hospital", help="the hospital id")
    parser.add_argument(
        "--rate", type=float, default=5.0, help="submissions per second (0: all at once)"
    )
    parser.add_argument("--count", type=int, default=30, help="how many referrals")
    parser.add_argument(
        "--mix",
        default="default",
        help=f"kind=weight,... (counts or ratios) of: {', '.join(KINDS)}; "
        "'default' is every kind, so every terminal status",
    )
    parser.add_argument("--seed", type=int, default=None, help="repeat a run's scripts")
    parser.add_argument(
        "--district",
        default=None,
        help="put every served patient in this district (e.g. Songpa-gu: one centre's queue)",
    )
    parser.add_argument("--run-id", default=None, help="referral ids are sim-<run-id>-NNNNN")


def _staff_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--delay",
        nargs=2,
        type=float,
        default=list(DEFAULT_DELAY),
        metavar=("MIN", "MAX"),
        help="seconds a coordinator takes before claiming and before completing "
        f"(default {DEFAULT_DELAY[0]} {DEFAULT_DELAY[1]})",
    )
    parser.add_argument("--instant", action="store_true", help="no delays (--delay 0 0)")
    parser.add_argument(
        "--coordinators",
        type=int,
        default=4,
        help="how many work at once in each centre (at most the accounts it has; default 4)",
    )
    parser.add_argument(
        "--accounts",
        type=Path,
        default=None,
        metavar="FILE",
        help=f"the coordinators' console accounts (default: {ACCOUNTS_FILE} beside the "
        "system file, else the demo accounts)",
    )


# -- commands -------------------------------------------------------------------------


def load_system(path: Path) -> SystemInfo:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path} not found: start the system with `make run` first") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path} is not JSON: {exc}") from None
    fields = SystemInfo.__dataclass_fields__
    return SystemInfo(**{k: v for k, v in data.items() if k in fields})


def _delay(args: argparse.Namespace) -> tuple[float, float]:
    if args.instant:
        return (0.0, 0.0)
    low, high = args.delay
    if low < 0 or high < low:
        raise UsageError("--delay MIN MAX needs 0 <= MIN <= MAX")
    return (low, high)


def load_staff_accounts(args: argparse.Namespace) -> list[Account]:
    """`--accounts FILE`, else staff-accounts.json beside the system file, else the
    demo coordinators (who see Songpa-gu's and Gangnam-gu's queues only)."""
    given: Path | None = getattr(args, "accounts", None)
    path = given or _system_file(args).parent / ACCOUNTS_FILE
    if not path.exists():
        if given is not None:
            raise UsageError(f"{given} not found")
        print(
            f"carelink simulate: no {path}; signing in as the demo coordinators "
            f"({', '.join(a.username for a in DEMO_ACCOUNTS)}): other centres' tasks stay "
            "untouched",
            file=sys.stderr,
        )
        return list(DEMO_ACCOUNTS)
    try:
        accounts = load_accounts(path)
    except (OSError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    if not accounts:
        raise UsageError(f"{path} holds no accounts")
    return accounts


def _check_console(info: SystemInfo) -> str:
    if not info.console:
        raise UsageError("the system file names no console: restart the system with `make run`")
    return info.console


def _check_hospital(args: argparse.Namespace, info: SystemInfo) -> Mix:
    if info.hospitals and args.hospital not in info.hospitals:
        raise UsageError(
            f"hospital {args.hospital!r} is not served; served: {', '.join(info.hospitals)}"
        )
    if args.count < 1:
        raise UsageError("--count must be at least 1")
    if args.rate < 0:
        raise UsageError("--rate must not be negative")
    try:
        return Mix.parse(args.mix)
    except ValueError as exc:
        raise UsageError(f"--mix: {exc}") from None


def _run(main: Callable[[asyncio.Event], Any]) -> Any:
    async def runner() -> Any:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)
        return await main(stop)

    return asyncio.run(runner())


def _guard(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def wrapped(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except UsageError as exc:
            print(f"carelink simulate: {exc}", file=sys.stderr)
            return 2
        except SignInRefused as exc:
            print(
                f"carelink simulate: the console refused the coordinators' sign-in ({exc}); "
                "is the system running with these accounts (--accounts)?",
                file=sys.stderr,
            )
            return 2
        except Unavailable as exc:
            print(f"carelink simulate: the console does not answer: {exc}", file=sys.stderr)
            return 3
        except KeyboardInterrupt:
            return 130

    wrapped.__name__ = command.__name__
    wrapped.__doc__ = command.__doc__
    return wrapped


@_guard
def hospital_command(args: argparse.Namespace) -> int:
    info = load_system(_system_file(args))
    mix = _check_hospital(args, info)
    display = ProgressDisplay(sys.stdout)

    async def main(stop: asyncio.Event) -> HospitalStats:
        return await run_hospital(
            info.kafka_bootstrap,
            args.hospital,
            rate=args.rate,
            count=args.count,
            mix=mix,
            seed=args.seed,
            run_id=args.run_id,
            stop=stop,
            timeout=args.timeout,
            district=args.district,
            on_progress=lambda stats: display.show(stats, None),
        )

    stats: HospitalStats = _run(main)
    display.show(stats, None, final=True)
    if _json(args):
        print(json.dumps(stats.summary(), indent=2))
    return _exit_code(stats)


@_guard
def staff_command(args: argparse.Namespace) -> int:
    info = load_system(_system_file(args))
    console = _check_console(info)
    delay = _delay(args)
    accounts = load_staff_accounts(args)
    display = ProgressDisplay(sys.stdout)

    async def main(stop: asyncio.Event) -> StaffStats:
        if args.duration is not None:
            asyncio.get_running_loop().call_later(args.duration, stop.set)
        return await run_staff(
            console,
            accounts,
            stop=stop,
            delay=delay,
            per_centre=_per_centre(args),
            on_progress=lambda stats: display.show(None, stats),
        )

    stats: StaffStats = _run(main)
    display.show(None, stats, final=True)
    if _json(args):
        print(json.dumps(stats.summary(), indent=2))
    return 1 if stats.errors else 0


@_guard
def demo_command(args: argparse.Namespace) -> int:
    info = load_system(_system_file(args))
    mix = _check_hospital(args, info)
    console = _check_console(info)
    delay = _delay(args)
    accounts = load_staff_accounts(args)
    display = ProgressDisplay(sys.stdout)
    latest: dict[str, Any] = {"hospital": None, "staff": None}

    async def main(stop: asyncio.Event) -> tuple[HospitalStats, StaffStats]:
        board = Board()
        staff_stop = asyncio.Event()

        def on_staff(stats: StaffStats) -> None:
            latest["staff"] = stats

        def on_hospital(stats: HospitalStats) -> None:
            latest["hospital"] = stats
            display.show(stats, latest["staff"])

        staff = asyncio.create_task(
            run_staff(
                console,
                accounts,
                stop=staff_stop,
                board=board,
                delay=delay,
                per_centre=_per_centre(args),
                on_progress=on_staff,
            )
        )

        def staff_ended(task: asyncio.Task[StaffStats]) -> None:
            # Coordinators who cannot sign in end the demo at once, not at its timeout.
            if not task.cancelled() and task.exception() is not None:
                stop.set()

        staff.add_done_callback(staff_ended)
        try:
            hospital = await run_hospital(
                info.kafka_bootstrap,
                args.hospital,
                rate=args.rate,
                count=args.count,
                mix=mix,
                seed=args.seed,
                run_id=args.run_id,
                board=board,
                stop=stop,
                timeout=args.timeout,
                district=args.district,
                on_progress=on_hospital,
            )
        finally:
            staff_stop.set()
            staff_stats = await staff
        return hospital, staff_stats

    hospital, staff = _run(main)
    display.show(hospital, staff, final=True)
    if _json(args):
        print(json.dumps({"hospital": hospital.summary(), "staff": staff.summary()}, indent=2))
    return _exit_code(hospital, staff)


def _per_centre(args: argparse.Namespace) -> int:
    if args.coordinators < 1:
        raise UsageError("--coordinators must be at least 1")
    return int(args.coordinators)


def _exit_code(hospital: HospitalStats, staff: StaffStats | None = None) -> int:
    ok = (
        hospital.done
        and hospital.sequence_gaps == 0
        and hospital.illegal_paths == 0
        and hospital.dead_letters == 0
    )
    return 0 if ok and (staff is None or staff.errors == 0) else 1


# -- the progress display -------------------------------------------------------------


class ProgressDisplay:
    """Redrawn in place on a terminal; one line per call otherwise (logs, CI)."""

    def __init__(self, stream: TextIO, *, interactive: bool | None = None) -> None:
        self.stream = stream
        self.interactive = stream.isatty() if interactive is None else interactive
        self._drawn = 0

    def show(
        self, hospital: HospitalStats | None, staff: StaffStats | None, *, final: bool = False
    ) -> None:
        if self.interactive:
            # Cut to the terminal's width: a wrapped line would throw the redraw off.
            width = max(20, shutil.get_terminal_size().columns - 1)
            lines = [line[:width] for line in render_block(hospital, staff)]
            if self._drawn:
                self.stream.write(f"\x1b[{self._drawn}F\x1b[J")
            self.stream.write("\n".join(lines) + "\n")
            self._drawn = 0 if final else len(lines)
        elif final:
            self.stream.write("\n".join(render_block(hospital, staff)) + "\n")
        else:
            self.stream.write(render_line(hospital, staff) + "\n")
        self.stream.flush()


def _seconds(value: float) -> str:
    return f"{value:.2f}s" if value < 100 else f"{value:.0f}s"


def render_line(hospital: HospitalStats | None, staff: StaffStats | None) -> str:
    parts: list[str] = []
    if hospital is not None:
        finals = " ".join(
            f"{s}={hospital.final_counts[s]}" for s in TERMINAL if hospital.final_counts[s]
        )
        parts.append(
            f"[{hospital.elapsed:5.0f}s] sent {hospital.sent}/{hospital.planned} "
            f"terminal {hospital.terminal} ({finals or '-'})"
        )
        for status in STATUS_ORDER:
            latency = hospital.latency(status)
            if latency is not None:
                parts.append(
                    f"{status} {hospital.status_counts[status]} "
                    f"p50 {_seconds(latency[0])} p95 {_seconds(latency[1])}"
                )
        parts.append(
            f"gaps {hospital.sequence_gaps} illegal {hospital.illegal_paths} "
            f"dlq {hospital.dead_letters}"
        )
    if staff is not None:
        parts.append(
            f"staff done {staff.tasks_done} working {staff.working} "
            f"skipped {sum(staff.skipped.values())} errors {staff.errors}"
        )
    return " | ".join(parts)


def render_block(hospital: HospitalStats | None, staff: StaffStats | None) -> list[str]:
    lines: list[str] = []
    if hospital is not None:
        state = " (timed out)" if hospital.timed_out else (" (done)" if hospital.done else "")
        lines.append(
            f"carelink simulation · hospital {hospital.hospital_id} · run {hospital.run_id} "
            f"· seed {hospital.seed} · {hospital.elapsed:.0f}s{state}"
        )
        lines.append(
            f"referrals sent {hospital.sent}/{hospital.planned} · "
            f"terminal {hospital.terminal}/{hospital.planned}"
        )
        lines.append(f"  {'status reached':<16}{'referrals':>10}{'median':>10}{'p95':>10}")
        for status in STATUS_ORDER:
            latency = hospital.latency(status)
            if latency is None:
                continue
            lines.append(
                f"  {status:<16}{hospital.status_counts[status]:>10}"
                f"{_seconds(latency[0]):>10}{_seconds(latency[1]):>10}"
            )
        delivery = [
            f"{step} {len(hospital.to_business_status[step])} "
            f"(p50 {_seconds(statistics.median(hospital.to_business_status[step]))})"
            for step in DELIVERY_STEPS
            if hospital.to_business_status.get(step)
        ]
        if delivery:
            lines.append("delivery: " + " · ".join(delivery))
        finals = " · ".join(f"{s} {hospital.final_counts[s]}" for s in TERMINAL)
        lines.append(f"final: {finals}")
        lines.append(
            f"sequence gaps {hospital.sequence_gaps} · duplicates {hospital.duplicates} · "
            f"dead letters {hospital.dead_letters} (any referral: {hospital.dead_letters_all})"
        )
        lines.append(f"illegal status paths (FHIR Task table) {hospital.illegal_paths}")
        illegal = [(rid, t) for rid, t in hospital.tracks.items() if t.illegal is not None]
        for rid, track in illegal[:10]:
            trail = " → ".join(f"{s}/{b}" for s, b in track.trail)
            lines.append(f"  {rid}: {track.illegal} ({trail})")
        if len(illegal) > 10:
            lines.append(f"  … and {len(illegal) - 10} more (--json lists them all)")
    if staff is not None:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(staff.done.items()))
        lines.append(
            f"staff: {staff.tasks_done} tasks done ({kinds or '-'}) · working {staff.working} · "
            f"skipped {sum(staff.skipped.values())} · errors {staff.errors}"
            + (f" (last: {staff.last_error})" if staff.last_error else "")
        )
    return lines
