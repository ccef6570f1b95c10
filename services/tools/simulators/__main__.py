"""`python -m services.tools.simulators {hospital,staff,demo} …`: the simulators without the
`carelink` CLI (the same commands as `carelink simulate …`)."""

from __future__ import annotations

import argparse
import sys

from services.tools.simulators.cli import add_commands


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.tools.simulators",
        description="Simulated hospitals and coordinators for a running carelink "
        "(addresses from .local/run/system.json, written by `make run`).",
    )
    add_commands(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
