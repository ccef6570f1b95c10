"""`python -m services.tools.localinfra` / `carelink-local`: run the servers until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType

from services.tools.localinfra.databases import ensure_databases
from services.tools.localinfra.infrastructure import InfrastructureError
from services.tools.localinfra.picker import KINDS, start_infrastructure

log = logging.getLogger("services.tools.localinfra")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m services.tools.localinfra",
        description=(
            "Start a Kafka-protocol broker and PostgreSQL (explicit env settings, else Docker, "
            "else the embedded Tansu + PostgreSQL 18), print their endpoints as one JSON line "
            "on stdout and keep them running until Ctrl-C or SIGTERM."
        ),
    )
    parser.add_argument(
        "--base-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "carelink-localinfra",
        help="directory for data and logs; each run gets its own subdirectory (default: %(default)s)",
    )
    parser.add_argument(
        "--kind",
        choices=("auto", *KINDS),
        default=None,
        help="force a kind (default: $CARELINK_LOCALINFRA, else auto)",
    )
    parser.add_argument(
        "--database",
        action="append",
        default=[],
        metavar="NAME",
        help="create this database if missing (repeatable); its URL is printed under 'databases'",
    )
    parser.add_argument(
        "--endpoints-file",
        type=Path,
        help="also write the JSON to this file once everything is ready (for scripts)",
    )
    parser.add_argument(
        "--keep-data",
        action="store_true",
        help="keep the embedded PostgreSQL data dir after stopping (logs are always kept)",
    )
    parser.add_argument(
        "--fsync",
        action="store_true",
        help="run the embedded PostgreSQL with fsync on (slower, survives an OS crash)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("got %s; stopping", signal.Signals(signum).name)
        stop.set()

    # Handlers before starting: a Ctrl-C during start-up must still stop what started.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        infra = start_infrastructure(
            args.base_dir, kind=args.kind, postgres_fsync=args.fsync, keep_data=args.keep_data
        )
    except InfrastructureError as exc:
        log.error("%s", exc)
        return 1
    try:
        e = infra.endpoints
        databases = (
            asyncio.run(ensure_databases(e.postgres_url, args.database)) if args.database else {}
        )
        payload = {
            "kind": e.kind,
            "kafka_bootstrap": e.kafka_bootstrap,
            "postgres_url": e.postgres_url,
            "log_dir": str(e.log_dir) if e.log_dir else None,
            "databases": databases,
            "broker_pid": infra.broker_pid,
            "postgres_pid": infra.postgres_pid,
        }
        text = json.dumps(payload)
        if args.endpoints_file:
            # Write-then-rename: a script polling for the file never reads half of it.
            tmp = args.endpoints_file.with_name(args.endpoints_file.name + ".tmp")
            tmp.write_text(text + "\n")
            os.replace(tmp, args.endpoints_file)
        print(text, flush=True)
        while not stop.wait(1.0):
            problems = infra.problems()
            if problems:
                for problem in problems:
                    log.error("%s", problem)
                return 1
        return 0
    finally:
        infra.stop()
        if args.endpoints_file:
            args.endpoints_file.unlink(missing_ok=True)
