"""`make run`: the whole system on this machine until Ctrl-C.

Prints, and writes to `.local/run/system.json` for tools, where everything is.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading
from pathlib import Path

from services.lib.runtime.logging import configure_logging
from services.lib.runtime.settings import REPO_ROOT
from services.tools.simulators import accounts
from services.tools.stack.system import LocalSystem


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.tools.stack",
        description="Start carelink locally: broker, PostgreSQL and the four services. "
        "Infrastructure is chosen as CARELINK_KAFKA_BOOTSTRAP + CARELINK_POSTGRES_URL if set, "
        "else Docker (testcontainers) if an engine answers, else the embedded Tansu broker "
        "and PostgreSQL 18.",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=REPO_ROOT / ".local" / "run",
        help="where data, logs and system.json go (default: .local/run)",
    )
    parser.add_argument(
        "--infra",
        choices=["auto", "explicit", "containers", "embedded"],
        default=None,
        help="force the infrastructure choice (default: auto, or $CARELINK_LOCALINFRA)",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="also run the simulated hospital and coordinators with live progress "
        "(`make demo`); the system keeps running afterwards until Ctrl-C",
    )
    parser.add_argument(
        "--demo-count", type=int, default=60, help="referrals the demo sends (default 60)"
    )
    args = parser.parse_args(argv)

    # The launcher's own library logs (topic creation …) would drown the summary below.
    configure_logging(service="stack", level="WARNING", fmt="console")
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("starting carelink (first start takes a little longer) ...", flush=True)
    # Simulated coordinators' console accounts (`carelink simulate staff|demo` signs in with
    # them), besides the demo accounts: the console reads this users file.
    staff = accounts.prepare(args.dir, accounts.local_system_staff())
    system = LocalSystem(
        args.dir, fixed_ports=True, infrastructure_kind=args.infra, extra_env=staff.env
    )
    try:
        info = system.start()
        print(f"\ncarelink is running on {info.infrastructure} infrastructure.\n")
        print(f"  Console           {info.console}   (demo sign-in: songpa / songpa-demo)")
        print(
            f"  Portal            {info.portal}   (social workers' demo sign-in: police-sw / "
            "police-demo, gangnam-sw / gangnam-demo)"
        )
        print(
            f"  FHIR gateway      {info.fhir}   (EHR client {info.fhir_client['client_id']}; "
            "a token: .venv/bin/python -m services.tools.stack.fhirclient)"
        )
        print(f"  Kafka bootstrap   {info.kafka_bootstrap}")
        for name in info.databases:
            print(f"  {name:<11} db   {info.databases[name]}")
        for name in info.health:
            print(f"  {name:<11} ready {info.health[name]}   metrics {info.metrics[name]}")
        for name in info.logs:
            print(f"  {name:<11} log  {info.logs[name]}")
        if info.infrastructure_logs:
            print(f"  broker/db logs    {info.infrastructure_logs}")
        print(f"  hospitals         {', '.join(info.hospitals)}")
        tokens = system.write_provider_tokens(args.dir / "provider-tokens.json")
        print(
            f"  providers         tokens for referral's /v1/provider/ routes in {tokens} "
            "(yours only)"
        )
        print(
            f"\nAll of this is in {args.dir / 'system.json'}. Ctrl-C stops everything.\n",
            flush=True,
        )
        demo = _start_demo(args) if args.demo else None
        while not stop.wait(1.0):
            if demo is not None and demo.poll() is not None:
                print(
                    f"\ndemo finished (exit {demo.returncode}); carelink keeps running. "
                    "Ctrl-C stops everything.",
                    flush=True,
                )
                demo = None
            for name, process in system.services.items():
                if not process.running():
                    print(
                        f"service {name} stopped unexpectedly; see {process.log_path}",
                        file=sys.stderr,
                    )
                    return 1
        print("stopping ...", flush=True)
        if demo is not None:
            demo.terminate()
        return 0
    finally:
        system.stop()
        print("stopped.", flush=True)


def _start_demo(args: argparse.Namespace) -> subprocess.Popen[bytes]:
    """The simulators as a child process, sharing this terminal for their live display."""
    return subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-m",
            "services.tools.simulators",
            "demo",
            "--system",
            str(args.dir / "system.json"),
            "--count",
            str(args.demo_count),
            "--delay",
            "0.5",
            "3",
        ],
        cwd=REPO_ROOT,
    )


if __name__ == "__main__":
    sys.exit(main())
