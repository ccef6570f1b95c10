"""`carelink personal-data preview|destroy|log`: PIPA destruction through intake's /v1 API.

The command never connects to intake's database: it calls intake's HTTP API (on
intake's health port) with the operators' credential, the caller `operator` of
intake's CARELINK_API_CALLERS. The token comes from CARELINK_OPERATOR_TOKEN, else
from `operator-token` beside the system file (`make run` writes it, readable by its
owner only). The API's URL is intake's health URL's origin, or CARELINK_INTAKE_API_URL.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from services.lib.runtime.callers import ACTOR_HEADER
from services.tools.cli.connect import HINT, ConnectError, System, default_system_files
from services.tools.cli.output import emit, render_table, warn

TOKEN_ENV = "CARELINK_OPERATOR_TOKEN"  # noqa: S105 (a variable name, not a secret)
URL_ENV = "CARELINK_INTAKE_API_URL"
TOKEN_FILE = "operator-token"  # noqa: S105 (a file name)
EXIT_OK, EXIT_PROBLEM = 0, 1


def api_url(system: System, env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    if url := env.get(URL_ENV):
        return url.rstrip("/")
    health = system.health.get("intake")
    if not health:
        raise ConnectError(f"no intake URL in {system.source} (set {URL_ENV}); {HINT}")
    parts = urlsplit(health)
    return f"{parts.scheme}://{parts.netloc}"


def operator_token(system_file: Path | None, env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    if token := env.get(TOKEN_ENV, "").strip():
        return token
    candidates = [system_file] if system_file else default_system_files()
    for candidate in candidates:
        path = candidate.with_name(TOKEN_FILE)
        if path.is_file():
            return path.read_text(encoding="utf-8").strip()
    raise ConnectError(
        f"no operator token: set {TOKEN_ENV} (the `operator` token of intake's "
        f"CARELINK_API_CALLERS), or run beside `make run`'s {TOKEN_FILE}"
    )


def call(system: System, system_file: Path | None, method: str, path: str, **kwargs: Any) -> Any:
    headers = {
        "Authorization": f"Bearer {operator_token(system_file)}",
        ACTOR_HEADER: os.environ.get("USER", "operator") or "operator",
    }
    url = api_url(system) + path
    try:
        response = httpx.request(method, url, headers=headers, timeout=60.0, **kwargs)
    except httpx.TransportError as exc:
        raise ConnectError(f"cannot reach intake's API at {url}: {exc}; {HINT}") from exc
    if response.status_code in (401, 403):
        raise PermissionError(
            f"intake refused the operator token ({response.status_code}): is it the "
            f"`operator` entry of intake's CARELINK_API_CALLERS?"
        )
    response.raise_for_status()
    return response.json()


def add_commands(
    commands: Any,
    command: Callable[..., argparse.ArgumentParser],
    system_of: Callable[[argparse.Namespace], System],
) -> None:
    def run(what: str) -> Callable[[argparse.Namespace], int]:
        def handler(args: argparse.Namespace) -> int:
            try:
                return _run(what, args, system_of(args))
            except PermissionError as exc:
                warn(str(exc))
                return EXIT_PROBLEM
            except httpx.HTTPStatusError as exc:
                warn(f"intake answered {exc.response.status_code}: {exc.response.text[:300]}")
                return EXIT_PROBLEM

        return handler

    p = command(
        commands,
        "personal-data",
        "preview and run the destruction of personal data (PIPA art. 21)",
        "Intake destroys a closed case's personal data once the policy's retention period "
        "(personal_data_retention_years, counted from the closure) has ended, every hour on "
        "its own, and at once when consent is withdrawn; each destruction is logged (case, "
        "reason, field names, never values). These commands go through intake's /v1 API "
        "with the operators' token, never its database.",
        None,
    )
    sub = p.add_subparsers(title="personal-data commands", metavar="PERSONAL_DATA_COMMAND")
    q = command(
        sub,
        "preview",
        "the closed cases due for destruction now (changes nothing)",
        "Lists the closed cases whose retention period has ended: case id, closure, due "
        "date. Nothing is destroyed.",
        run("preview"),
    )
    q.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    q = command(
        sub,
        "destroy",
        "destroy the due cases' personal data now",
        "Destroys the personal data of the cases `preview` lists (up to --limit), as "
        "intake's hourly job would: personal fields cleared, pseudonymous facts kept, "
        "each destruction logged, the other services told to delete their free text.",
        run("destroy"),
    )
    q.add_argument("--limit", type=int, default=200, help="at most this many (default 200)")
    q = command(
        sub,
        "log",
        "the destruction log, newest first",
        "Every destruction: case id, reason (retention-expired or consent-withdrawn), the "
        "fields destroyed and when.",
        run("log"),
    )
    q.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")


def _run(what: str, args: argparse.Namespace, system: System) -> int:
    limit = max(1, min(int(args.limit), 10_000))
    if what == "preview":
        data = call(system, args.system, "GET", f"/v1/personal-data/destruction?limit={limit}")
        emit(
            data,
            as_json=args.json,
            text=lambda: (
                f"{len(data['due'])} case(s) due for destruction as of {data['as_of']}"
                + (
                    "\n"
                    + render_table(
                        ["CASE", "CLOSED", "DUE"],
                        [[d["case_id"], d["closed_at"], d["due_at"]] for d in data["due"]],
                    )
                    if data["due"]
                    else ""
                )
            ),
        )
    elif what == "destroy":
        data = call(
            system, args.system, "POST", "/v1/personal-data/destruction", json={"limit": limit}
        )
        emit(
            data,
            as_json=args.json,
            text=lambda: (
                f"{len(data['destroyed'])} case(s) destroyed"
                + (
                    "\n"
                    + render_table(
                        ["CASE", "REASON", "FIELDS"],
                        [
                            [d["case_id"], d["reason"], ", ".join(d["fields"]) or "-"]
                            for d in data["destroyed"]
                        ],
                    )
                    if data["destroyed"]
                    else ""
                )
            ),
        )
    else:
        rows = call(system, args.system, "GET", f"/v1/personal-data/destructions?limit={limit}")
        emit(
            {"destructions": rows},
            as_json=args.json,
            text=lambda: render_table(
                ["WHEN", "CASE", "REASON", "FIELDS"],
                [
                    [d["destroyed_at"], d["case_id"], d["reason"], ", ".join(d["fields"]) or "-"]
                    for d in rows
                ],
            ),
        )
    return EXIT_OK
