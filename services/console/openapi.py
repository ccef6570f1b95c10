"""Write or check the console API's OpenAPI document (docs/openapi.json).

python -m services.console.openapi            # regenerate docs/openapi.json
python -m services.console.openapi --check    # exit 1 if the committed file differs
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from services.console.app import create_app
from services.console.settings import ConsoleSettings
from services.lib.runtime.settings import REPO_ROOT

DOCUMENT = REPO_ROOT / "docs" / "openapi.json"


def render() -> str:
    """The document as committed: stable key order, UTF-8, a final newline."""
    # Nothing connects and no session is signed: the settings do not shape the document.
    app = create_app(ConsoleSettings())
    return json.dumps(app.openapi(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.console.openapi")
    parser.add_argument("--check", action="store_true", help="fail if the file is out of date")
    parser.add_argument("--output", type=Path, default=DOCUMENT)
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(
                f"{args.output} is out of date: run python -m services.console.openapi",
                file=sys.stderr,
            )
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
