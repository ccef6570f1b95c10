"""`carelink`: the operators' command line. `carelink --help` lists the commands.

Each command is `run_<name>(args) -> exit code`; the work is in the module named after
what it looks at. Commands run in-process through `main(argv)`, which the tests use.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import logging
import os
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka.errors import KafkaError

from services.tools.cli import dlq, lag, outbox, personal_data, status, topics, trace
from services.tools.cli.connect import HINT, ConnectError, System, load_system
from services.tools.cli.output import emit, format_age, render_table, warn
from services.tools.stack.deployables import SERVICES

EXIT_OK = 0
EXIT_PROBLEM = 1  # the command ran and found something wrong (not ready, backlog unreadable, …)
EXIT_USAGE = 2  # bad arguments (argparse's own code)
EXIT_UNREACHABLE = 3  # no system.json, broker or database unreachable
EXIT_NOT_FOUND = 4  # the record, case or referral asked for does not exist
EXIT_INTERRUPTED = 130

APPROXIMATE = (
    "On the local Tansu broker (`make run` without Docker) end offsets are approximate: "
    "it counts produced batches, not records, so totals, rates and lag are low or zero "
    "there. They are exact on Apache Kafka."
)

DESCRIPTION = """\
Look at a running carelink system: topics, consumer lag, dead letters, one case's
history, outbox backlogs and service health.

Where the system is: --system FILE, else .local/run/system.json (written by
`make run`); CARELINK_KAFKA_BOOTSTRAP, CARELINK_<SERVICE>_DATABASE_URL and
CARELINK_<SERVICE>_HEALTH_URL override it, and the other CARELINK_KAFKA_* settings
(SASL, TLS) apply as for the services."""

EPILOG = f"""\
exit codes:
  {EXIT_OK}    done
  {EXIT_PROBLEM}    done, and found a problem (a service not ready, a backlog unreadable,
       a replay failed)
  {EXIT_USAGE}    bad arguments
  {EXIT_UNREACHABLE}    the system cannot be found or reached (is `make run` running?)
  {EXIT_NOT_FOUND}    the record, case or referral does not exist

Every command takes --json for machine-readable output and --help for its options."""

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="carelink",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common_options(parser, top_level=True)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    p = _command(
        commands,
        "topics",
        "every topic with partitions, end offsets and message rate",
        "Every topic on the broker (internal ones left out) with its partition count, the "
        "end offset of each partition, their total, and the message rate from two samples "
        f"--interval seconds apart.\n\n{APPROXIMATE}",
        run_topics,
    )
    p.add_argument(
        "--interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="time between the two end-offset samples for the rate (default 1)",
    )

    p = _command(
        commands,
        "lag",
        "each carelink consumer group's lag per topic (and partition)",
        "For each carelink consumer group (`<prefix>carelink-<service>`), the committed offset "
        "against the end offset of every partition it reads: intake reads every "
        "hospital.*.referrals topic and care.cases, the others care.cases; any other topic "
        "where the group committed is shown too. Nothing committed means the whole partition "
        "is lag (end - start).\n\n"
        f"{APPROXIMATE} A committed offset past the end is then shown as lag 0 and flagged "
        "`end<committed`.",
        run_lag,
    )
    p.add_argument(
        "--group-prefix",
        default=os.environ.get("CARELINK_GROUP_PREFIX"),
        metavar="PREFIX",
        help="only the four groups with this prefix, listed by the broker or not "
        "(default: $CARELINK_GROUP_PREFIX, else every carelink group the broker lists)",
    )
    p.add_argument(
        "--group",
        action="append",
        default=[],
        metavar="GROUP",
        help="this consumer group instead (repeatable)",
    )
    p.add_argument("--partitions", action="store_true", help="one line per partition")

    p = _command(
        commands,
        "dlq",
        "dead letters: list, show, replay",
        "Dead-letter topics (`<topic>.dlq`) hold records a service could not handle, with "
        "the original bytes and headers and the error. Those of hospital topics hold "
        "personal data: values are never listed, and shown only with `dlq show --show-value`.",
        None,
    )
    dlq_commands = p.add_subparsers(title="dlq commands", metavar="DLQ_COMMAND")
    q = _command(
        dlq_commands,
        "list",
        "every dead letter (never its value)",
        "Every dead letter of every *.dlq topic: where it is, where it came from "
        "(topic, partition, offset), which consumer failed, when, the error, key, value size "
        "and whether it has been replayed. The value is never printed.",
        run_dlq_list,
    )
    q.add_argument("--topic", metavar="T", help="one dead-letter topic (or its source topic)")
    q = _command(
        dlq_commands,
        "show",
        "one dead letter with all headers",
        "One dead letter with all its headers. The value only with --show-value: it may "
        "contain personal data.",
        run_dlq_show,
    )
    _coordinates(q)
    q.add_argument(
        "--show-value",
        action="store_true",
        help="also print the value (may contain PERSONAL DATA: do not copy it elsewhere)",
    )
    q = _command(
        dlq_commands,
        "replay",
        "send dead letters back to their source topic",
        "Republish dead letters to their source topic and partition with the original key, "
        "value and headers (minus carelink_dlq_*), plus `carelink_replay: dlq-topic:partition:"
        "offset`, which lets the inbox handle a dead-lettered event again. Each replay is "
        "recorded in the topic carelink.dlq.replays (created with one partition if missing); "
        "a dead letter already replayed is skipped unless --force.",
        run_dlq_replay,
    )
    q.add_argument("--all", action="store_true", help="every dead letter (see --topic)")
    q.add_argument(
        "position",
        nargs="*",
        metavar="TOPIC PARTITION OFFSET",
        help="one dead letter by its position",
    )
    q.add_argument("--topic", metavar="T", help="with --all: only this dead-letter topic")
    q.add_argument("--dry-run", action="store_true", help="say what would be done, do nothing")
    q.add_argument("--force", action="store_true", help="replay even if replayed before")

    p = _command(
        commands,
        "trace",
        "one case's history across topics, without personal data",
        "Every record of one case, by case id or referral id, across care.cases, the "
        "hospital's referrals and updates, care.escalations and the dead-letter topics, in "
        "order. Personal data is never printed: hospital referral records only by type, id, "
        "time and size; other records by status-like fields from an allow-list.",
        run_trace,
    )
    p.add_argument("id", metavar="ID", help="a case id (case-…) or a referral id")

    p = _command(
        commands,
        "outbox",
        "unpublished outbox backlog per service; set-aside rows, requeue",
        "For each service database: how many outbox rows are not yet published and how old "
        "the oldest is, and how many the relay set aside because the broker refused them for "
        "good. A growing backlog means the service's relay cannot reach the broker. "
        "`outbox set-aside` lists the set-aside rows with the broker's reason; `outbox "
        "requeue` puts them back in the queue once the cause is fixed.",
        run_outbox,
    )
    outbox_commands = p.add_subparsers(title="outbox commands", metavar="OUTBOX_COMMAND")
    q = _command(
        outbox_commands,
        "set-aside",
        "the rows the relay gave up on, with the reason (never their value)",
        "Every outbox row the relay set aside (the broker refused it for good: too large, no "
        "such topic, not allowed): its id, topic, size, when it was written and set aside, "
        "and the broker's error. The value is never printed.",
        run_outbox_set_aside,
    )
    q.add_argument(
        "--service",
        action="append",
        choices=SERVICES,
        default=[],
        metavar="SERVICE",
        help=f"only this service (repeatable; one of {', '.join(SERVICES)}; default: all)",
    )
    q = _command(
        outbox_commands,
        "requeue",
        "put set-aside rows back in the queue after the cause is fixed",
        "Clears the set-aside mark of one service's rows (--id, repeatable) or of all of them "
        "(--all): they are unpublished again, and the service's relay publishes them next, "
        "lowest id first (the broker's last error stays on the row). A row that is refused "
        "again is set aside again. Requeue only after fixing the cause (see `outbox "
        "set-aside` and docs/operators.md): a requeued row reaches readers after the later "
        "events of its key.",
        run_outbox_requeue,
    )
    q.add_argument(
        "--service",
        required=True,
        choices=SERVICES,
        metavar="SERVICE",
        help=f"the service whose outbox it is ({', '.join(SERVICES)})",
    )
    q.add_argument(
        "--id", type=int, action="append", default=[], metavar="N", help="one row (repeatable)"
    )
    q.add_argument("--all", action="store_true", help="every set-aside row of the service")
    q.add_argument("--dry-run", action="store_true", help="say what would be done, do nothing")

    # PIPA destruction through intake's /v1 API (services/tools/cli/personal_data.py).
    personal_data.add_commands(commands, _command, _system)

    _command(
        commands,
        "status",
        "one line of health per service",
        "Each service's readiness (/health/ready): ready or not, and each check.",
        run_status,
    )

    _register_plugins(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # aiokafka logs every failed connection attempt; the command reports the outcome once.
    kafka_log = logging.getLogger("aiokafka")
    level = kafka_log.level
    kafka_log.setLevel(logging.CRITICAL)
    try:
        return _main(argv)
    finally:
        kafka_log.setLevel(level)


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2)
        return _exit_code(exc)
    handler: Handler | None = getattr(args, "run", None)
    if handler is None:
        plugin = getattr(args, "func", None)
        if plugin is None:
            (getattr(args, "help_parser", None) or parser).print_help(sys.stderr)
            return EXIT_USAGE
        handler = _plugin_handler(plugin)
    try:
        return handler(args)
    except SystemExit as exc:  # parser.error() in a command's own checks
        return _exit_code(exc)
    except ConnectError as exc:
        warn(str(exc))
        return EXIT_UNREACHABLE
    except (KafkaError, OSError) as exc:
        warn(f"cannot reach the system: {type(exc).__name__}: {exc}; is `make run` running?")
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


# Commands ---------------------------------------------------------------------------


def run_topics(args: argparse.Namespace) -> int:
    system = _system(args)
    figures = asyncio.run(topics.topic_figures(system, interval=args.interval))
    payload = {
        "interval_s": args.interval,
        "approximate": _approximate(system),
        "topics": [f.as_json() for f in figures],
    }
    emit(
        payload,
        as_json=args.json,
        text=lambda: render_table(
            ["TOPIC", "PARTITIONS", "END OFFSETS", "TOTAL", "RATE/S"],
            topics.figures_table_rows(figures),
        ),
    )
    _note_approximate(system, args)
    return EXIT_OK


def run_lag(args: argparse.Namespace) -> int:
    system = _system(args)
    reports = asyncio.run(
        lag.consumer_lag(system, prefix=args.group_prefix or None, groups=args.group)
    )
    payload = {"approximate": _approximate(system), "groups": reports}
    third = "PARTITION" if args.partitions else "PARTITIONS"
    emit(
        payload,
        as_json=args.json,
        text=lambda: (
            render_table(
                ["GROUP", "TOPIC", third, "COMMITTED", "END", "LAG", "NOTE"],
                lag.lag_table_rows(reports, detail=args.partitions),
            )
            if reports
            else "no carelink consumer groups (they appear once they have committed offsets)"
        ),
    )
    _note_approximate(system, args)
    return EXIT_OK


def run_dlq_list(args: argparse.Namespace) -> int:
    system = _system(args)
    rows, complete = asyncio.run(
        dlq.list_dead_letters(system, topic=args.topic, timeout=args.timeout)
    )
    _note_incomplete(complete, args)
    emit(
        {"complete": complete, "dead_letters": rows},
        as_json=args.json,
        text=lambda: (
            render_table(
                [
                    "DLQ TOPIC",
                    "P",
                    "OFFSET",
                    "SOURCE",
                    "CONSUMER",
                    "FAILED AT",
                    "KEY",
                    "SIZE",
                    "REPLAYED",
                    "ERROR",
                ],
                [
                    [
                        r["topic"],
                        r["partition"],
                        r["offset"],
                        f"{r['source_topic']}:{r['source_partition']}:{r['source_offset']}",
                        r["consumer"],
                        r["failed_at"],
                        r["key"],
                        r["size"],
                        r["replayed"],
                        _short(r["error"]),
                    ]
                    for r in rows
                ],
            )
            if rows
            else "no dead letters"
        ),
    )
    return EXIT_OK


def run_dlq_show(args: argparse.Namespace) -> int:
    system = _system(args)
    if args.show_value:
        warn("the value may contain PERSONAL DATA: do not copy it anywhere else")
    shown = asyncio.run(
        dlq.show_dead_letter(
            system,
            args.topic,
            args.partition,
            args.offset,
            show_value=args.show_value,
            timeout=args.timeout,
        )
    )
    if shown is None:
        warn(f"no record at {args.topic}:{args.partition}:{args.offset}")
        return EXIT_NOT_FOUND
    emit(shown, as_json=args.json, text=lambda: _show_text(shown))
    return EXIT_OK


def run_dlq_replay(args: argparse.Namespace) -> int:
    parser: argparse.ArgumentParser = args.help_parser
    if args.all == bool(args.position):
        parser.error("give either --all or TOPIC PARTITION OFFSET")
    coordinates: tuple[str, int, int] | None = None
    if args.position:
        if len(args.position) != 3:
            parser.error("a dead letter is TOPIC PARTITION OFFSET")
        try:
            coordinates = (args.position[0], int(args.position[1]), int(args.position[2]))
        except ValueError:
            parser.error("PARTITION and OFFSET are numbers")
        if args.topic:
            parser.error("--topic goes with --all")
    system = _system(args)
    outcomes = asyncio.run(
        dlq.replay(
            system,
            select_all=args.all,
            topic=args.topic,
            coordinates=coordinates,
            dry_run=args.dry_run,
            force=args.force,
            timeout=args.timeout,
        )
    )
    emit(
        {"dry_run": args.dry_run, "replays": [o.as_json() for o in outcomes]},
        as_json=args.json,
        text=lambda: (
            render_table(
                ["DEAD LETTER", "ACTION", "TO", "DETAIL"],
                [
                    [
                        o.dead_letter,
                        o.action,
                        f"{o.source_topic}:{o.partition}:{o.offset}"
                        if o.offset is not None
                        else o.source_topic,
                        o.detail,
                    ]
                    for o in outcomes
                ],
            )
            if outcomes
            else "no dead letters"
        ),
    )
    failed = any(o.action == "failed" for o in outcomes)
    if coordinates is not None and outcomes and outcomes[0].detail == "no such record":
        return EXIT_NOT_FOUND
    return EXIT_PROBLEM if failed else EXIT_OK


def run_trace(args: argparse.Namespace) -> int:
    system = _system(args)
    found = asyncio.run(trace.trace(system, args.id, timeout=args.timeout))
    _note_incomplete(found.complete, args)
    if not found.events:
        if args.json:
            emit(found.as_json(), as_json=True, text=str)
        warn(f"nothing found for {args.id}")
        return EXIT_NOT_FOUND
    emit(found.as_json(), as_json=args.json, text=lambda: _trace_text(found))
    return EXIT_OK


def run_outbox(args: argparse.Namespace) -> int:
    system = _system(args)
    if not system.databases:
        raise ConnectError(f"no database URLs in {system.source}; {HINT}")
    rows = asyncio.run(outbox.backlogs(system, timeout=min(args.timeout, 10.0)))
    emit(
        {"services": rows},
        as_json=args.json,
        text=lambda: render_table(
            ["SERVICE", "UNPUBLISHED", "OLDEST", "SET ASIDE", "ERROR"],
            [
                [
                    r["service"],
                    r["unpublished"],
                    format_age(r["oldest_age_s"]),
                    r["set_aside"],
                    r["error"],
                ]
                for r in rows
            ],
        ),
    )
    return EXIT_PROBLEM if any(r["error"] or r["set_aside"] for r in rows) else EXIT_OK


def run_outbox_set_aside(args: argparse.Namespace) -> int:
    system = _system(args)
    timeout = min(args.timeout, 10.0)

    async def collect() -> list[dict[str, Any]]:
        found = await asyncio.gather(
            *(
                outbox.set_aside_rows(system.database(s), s, timeout=timeout)
                for s in args.service or system.databases
                if s in SERVICES
            )
        )
        return [row for rows in found for row in rows]

    if not (args.service or system.databases):
        raise ConnectError(f"no database URLs in {system.source}; {HINT}")
    rows = _reach_database(lambda: asyncio.run(collect()))
    emit(
        {"set_aside": rows},
        as_json=args.json,
        text=lambda: (
            render_table(
                ["SERVICE", "ID", "TOPIC", "SIZE", "WRITTEN", "SET ASIDE", "ERROR"],
                [
                    [
                        r["service"],
                        r["id"],
                        r["topic"],
                        r["size"],
                        r["created_at"],
                        r["set_aside_at"],
                        _short(r["error"]),
                    ]
                    for r in rows
                ],
            )
            if rows
            else "no set-aside outbox rows"
        ),
    )
    return EXIT_OK


def run_outbox_requeue(args: argparse.Namespace) -> int:
    parser: argparse.ArgumentParser = args.help_parser
    if args.all == bool(args.id):
        parser.error("give either --all or --id N")
    system = _system(args)
    url = system.database(args.service)
    rows = _reach_database(
        lambda: asyncio.run(
            outbox.requeue(
                url,
                args.service,
                ids=None if args.all else args.id,
                dry_run=args.dry_run,
                timeout=min(args.timeout, 10.0),
            )
        )
    )
    emit(
        {"dry_run": args.dry_run, "rows": rows},
        as_json=args.json,
        text=lambda: (
            render_table(
                ["SERVICE", "ID", "ACTION", "TOPIC", "SET ASIDE", "ERROR"],
                [
                    [
                        r["service"],
                        r["id"],
                        r["action"],
                        r.get("topic"),
                        r.get("set_aside_at"),
                        _short(r.get("error")),
                    ]
                    for r in rows
                ],
            )
            if rows
            else f"no set-aside outbox rows in {args.service}"
        ),
    )
    if args.id and all(r["action"] == "not set aside" for r in rows):
        return EXIT_NOT_FOUND
    return EXIT_OK


def run_status(args: argparse.Namespace) -> int:
    system = _system(args)
    if not system.health:
        raise ConnectError(f"no health URLs in {system.source}; {HINT}")
    rows = asyncio.run(status.statuses(system, timeout=min(args.timeout, 5.0)))
    emit(
        {"services": rows},
        as_json=args.json,
        text=lambda: render_table(
            ["SERVICE", "STATE", "CHECKS", "URL"], [status.status_line(r) for r in rows]
        ),
    )
    return EXIT_OK if rows and all(r["ready"] for r in rows) else EXIT_PROBLEM


# Helpers ----------------------------------------------------------------------------


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None or isinstance(exc.code, int):
        return int(exc.code or 0)
    warn(str(exc.code))
    return EXIT_PROBLEM


def _common_options(parser: argparse.ArgumentParser, *, top_level: bool) -> None:
    # On the top level with defaults, on every command with SUPPRESS, so the options work
    # before or after the command name.
    def default(value: Any) -> Any:
        return value if top_level else argparse.SUPPRESS

    parser.add_argument(
        "--json", action="store_true", default=default(False), help="print JSON, for scripts"
    )
    parser.add_argument(
        "--system",
        type=Path,
        default=default(None),
        metavar="FILE",
        help="the system.json to use (default: .local/run/system.json)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=default(30.0),
        metavar="SECONDS",
        help="give up reading topics after this long (default 30)",
    )


def _command(
    commands: Any,
    name: str,
    summary: str,
    description: str,
    handler: Handler | None,
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=summary,
        description=_paragraphs(description),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common_options(parser, top_level=False)
    parser.set_defaults(help_parser=parser)
    if handler is not None:
        parser.set_defaults(run=handler)
    return parser


def _paragraphs(text: str, width: int = 88) -> str:
    return "\n\n".join(textwrap.fill(p, width) for p in text.split("\n\n"))


def _coordinates(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("topic", metavar="TOPIC", help="the dead-letter topic")
    parser.add_argument("partition", metavar="PARTITION", type=int)
    parser.add_argument("offset", metavar="OFFSET", type=int)


def _register_plugins(commands: Any) -> None:
    """`carelink simulate …` when the simulators are installed alongside.

    `services.tools.simulators.cli.register(subparsers)` adds its parsers and sets, with
    `set_defaults`, `run` (or `func`): a callable taking the parsed arguments and
    returning an exit code (a coroutine function is run with asyncio).
    """
    name = "services.tools.simulators.cli"
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        if exc.name != name:  # the module exists but is broken: say so, keep the rest working
            warn(f"`carelink simulate` unavailable: {exc}")
        return
    register = getattr(module, "register", None)
    if callable(register):
        register(commands)


def _plugin_handler(func: Callable[..., Any]) -> Handler:
    def run(args: argparse.Namespace) -> int:
        result = func(args)
        if inspect.isawaitable(result):
            result = asyncio.run(_await(result))
        return int(result or 0)

    return run


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _reach_database(call: Callable[[], Any]) -> Any:
    """A database that cannot be reached is exit 3, like an unreachable broker."""
    try:
        return call()
    except (OSError, TimeoutError, asyncpg.PostgresConnectionError) as exc:
        raise ConnectError(f"cannot reach the database: {type(exc).__name__}: {exc}") from exc


def _system(args: argparse.Namespace) -> System:
    return load_system(args.system)


def _approximate(system: System) -> bool:
    return system.infrastructure == "embedded"


def _note_approximate(system: System, args: argparse.Namespace) -> None:
    if _approximate(system) and not args.json:
        warn("local Tansu broker: end offsets, totals, rates and lag are approximate")


def _note_incomplete(complete: bool, args: argparse.Namespace) -> None:
    if not complete:
        warn(f"stopped reading after --timeout {args.timeout:g}s: the result may be incomplete")


def _short(text: str | None, width: int = 80) -> str | None:
    if text is None:
        return None
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


def _show_text(shown: dict[str, Any]) -> str:
    lines = [
        f"{shown['topic']}:{shown['partition']}:{shown['offset']}  ({shown['timestamp']})",
        f"key     {shown['key'] if shown['key'] is not None else '-'}",
        f"size    {shown['size']} bytes",
        f"source  {shown['source_topic']}:{shown['source_partition']}:{shown['source_offset']}",
        f"error   {shown['error']}",
        "",
        render_table(["HEADER", "VALUE"], [[h["name"], h["value"]] for h in shown["headers"]]),
    ]
    if "value" in shown:
        lines += ["", f"value ({shown['value_encoding']}):", str(shown["value"])]
    return "\n".join(lines)


def _trace_text(found: trace.Trace) -> str:
    head = [
        f"cases      {' '.join(sorted(found.case_ids)) or '-'}",
        f"referrals  {' '.join(sorted(found.referral_ids)) or '-'}",
        "",
    ]
    return "\n".join(
        [
            *head,
            render_table(
                ["TIME", "TOPIC", "POSITION", "TYPE", "DETAILS"],
                trace.trace_table_rows(found.events, show_referral=len(found.referral_ids) > 1),
            ),
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
