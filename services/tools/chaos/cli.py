"""`python -m services.tools.chaos` (`make chaos`): every scenario, or one, then a verdict.

    python -m services.tools.chaos                      # all five, 2,000 referrals each
    python -m services.tools.chaos --quick              # all five, 300 referrals each
    python -m services.tools.chaos --scenario kill --seed 7

Bounded: every wait has a limit and the whole run a budget (--max-minutes);
loopback only; it stops the systems it started. Progress goes to stderr, the
verdict to stdout, everything to docs/chaos/result.json and result.md.
Exit status: 0 PASS, 1 FAIL (loss, duplication, disorder, stuck referrals or an
undrained outbox), 3 INCONCLUSIVE (the harness could not prove either), 2 usage.
"""

from __future__ import annotations

import argparse
import logging
import random
import shlex
import signal
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from services.lib.policy import load_registry
from services.lib.runtime.logging import configure_logging
from services.lib.runtime.settings import REPO_ROOT
from services.tools.stack.deployables import SERVICES

from .harness import Options, ScenarioResult, load_timeout, run_scenario, say, window_for
from .report import verdict_line, write
from .scenarios import SCENARIOS
from .verify import FAIL, INCONCLUSIVE, PASS, overall

DEFAULT_REFERRALS = 2000
QUICK_REFERRALS = 300
DEFAULT_HOSPITALS = ("police-hospital", "severance", "hanyang-university")
EXIT = {PASS: 0, FAIL: 1, INCONCLUSIVE: 3}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m services.tools.chaos",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--scenario",
        action="append",
        choices=sorted(SCENARIOS),
        metavar="NAME",
        help=f"run only this scenario (repeatable): {', '.join(SCENARIOS)}",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"a short run: {QUICK_REFERRALS} referrals, shorter fault windows",
    )
    p.add_argument(
        "--referrals",
        type=int,
        default=None,
        help=f"referrals per scenario (default {DEFAULT_REFERRALS}, {QUICK_REFERRALS} with --quick)",
    )
    p.add_argument("--seed", type=int, default=None, help="repeat a run's plan and referrals")
    p.add_argument(
        "--hospitals",
        default=",".join(DEFAULT_HOSPITALS),
        help="comma-separated hospital ids the referrals come from",
    )
    p.add_argument(
        "--target",
        choices=SERVICES,
        default=None,
        help="the service whose database is closed (postgres) or which is paused "
        "(slow-consumer); default: chosen by the seed",
    )
    p.add_argument(
        "--infra",
        choices=["auto", "embedded", "containers", "explicit"],
        default=None,
        help="infrastructure (default: auto, or $CARELINK_LOCALINFRA); broker-freeze and "
        "postgres need embedded",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds the load may take per scenario (default: window + 150 s or more)",
    )
    p.add_argument(
        "--quiet-timeout",
        type=float,
        default=None,
        help="seconds to wait for the system to go quiet after the load (default 120, 60 quick)",
    )
    p.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="budget for the whole run; scenarios that no longer fit are skipped "
        "(default 55, 25 with --quick)",
    )
    p.add_argument(
        "--coordinators",
        type=int,
        default=16,
        help="simulated coordinators in all, spread over the centres, each signed in to the "
        "console with its own account (default 16)",
    )
    p.add_argument(
        "--out-dir",
        default=None,
        help="where result.json and result.md go (default docs/chaos, docs/chaos/quick with "
        "--quick, so a quick run never replaces the full run's verdict)",
    )
    p.add_argument(
        "--work-dir",
        default=str(REPO_ROOT / ".local" / "chaos"),
        help="where each scenario's system (data, logs) goes",
    )
    p.add_argument(
        "--keep-data",
        action="store_true",
        help="keep the database files of passing scenarios too (failing ones are always kept)",
    )
    p.add_argument("--progress-interval", type=float, default=5.0, help="seconds between lines")
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.list:
        for scenario in SCENARIOS.values():
            print(f"{scenario.name:<14} {scenario.title}")
        return 0
    referrals = args.referrals or (QUICK_REFERRALS if args.quick else DEFAULT_REFERRALS)
    if referrals < 10:
        print(
            "--referrals must be at least 10 (the mix needs room for every kind)", file=sys.stderr
        )
        return 2
    hospitals = [h.strip() for h in args.hospitals.split(",") if h.strip()]
    known = load_registry().hospital_ids
    unknown = [h for h in hospitals if h not in known]
    if not hospitals or unknown:
        print(f"unknown hospital(s): {unknown}; registered: {sorted(known)}", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 10**6)
    names = list(dict.fromkeys(args.scenario or SCENARIOS))
    budget_s = 60 * (args.max_minutes or (25 if args.quick else 55))
    began = time.monotonic()
    token = uuid.uuid4().hex[:6]
    options = Options(
        referrals=referrals,
        quick=args.quick,
        seed=seed,
        hospitals=hospitals,
        base_dir=(REPO_ROOT / args.work_dir).resolve() / token,
        infra=args.infra,
        timeout_s=args.timeout,
        quiet_timeout_s=args.quiet_timeout or (60.0 if args.quick else 120.0),
        target=args.target,
        progress_interval_s=args.progress_interval,
        coordinators=args.coordinators,
        keep_data=args.keep_data,
        deadline=began + budget_s,
    )

    # The harness's own clients retry through the faults on purpose; their tracebacks
    # would drown the progress lines. The services' logs keep everything.
    # Logs of this process (and of the libraries it uses) go to stderr, warnings and up.
    configure_logging(service="chaos", level="WARNING", fmt="console")
    for noisy in ("asyncpg", "aiokafka"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)

    abort = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        say(f"[chaos] {signal.Signals(signum).name}: stopping after cleaning up")
        abort.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    say(
        f"[chaos] run {token}, seed {seed}: {', '.join(names)}; {referrals} referrals each; "
        f"budget {budget_s / 60:.0f} min; systems under {options.base_dir}"
    )
    results: list[ScenarioResult] = []
    for index, name in enumerate(names, start=1):
        scenario = SCENARIOS[name]
        window = window_for(scenario, options)
        needed = window + 60 + options.quiet_timeout_s / 2
        left = options.deadline - time.monotonic()
        if abort.is_set() or left < needed:
            why = (
                "aborted"
                if abort.is_set()
                else f"time budget ({left:.0f}s left, ~{needed:.0f}s needed)"
            )
            results.append(
                ScenarioResult(name, scenario.title, INCONCLUSIVE, notes=[f"not run: {why}"])
            )
            continue
        say(
            f"[chaos] scenario {index}/{len(names)}: {name} (load bound {load_timeout(window, options):.0f}s)"
        )
        results.append(run_scenario(scenario, index, token, options, abort))

    run = {
        "command": "python -m services.tools.chaos "
        + shlex.join(sys.argv[1:] if argv is None else argv),
        "run": token,
        "seed": seed,
        "quick": args.quick,
        "referrals": referrals,
        "hospitals": hospitals,
        "started": started_at,
        "duration_s": round(time.monotonic() - began, 1),
        "verdict": overall(r.verdict for r in results),
        "scenarios": [r.to_dict() for r in results],
    }
    out_dir = args.out_dir or REPO_ROOT / "docs" / "chaos" / ("quick" if args.quick else "")
    json_path, md_path = write((REPO_ROOT / out_dir).resolve(), run)
    print(verdict_line(run))
    print(f"details: {json_path} and {md_path}")
    return EXIT[str(run["verdict"])]
