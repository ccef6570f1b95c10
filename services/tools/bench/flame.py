"""Where the time goes, read from py-spy's flame graphs (SVG): the share of a service's
busy samples spent in each kind of work. Pure text processing, unit-tested.

Every frame of py-spy's SVG carries its title (`function (file:line) (N samples, P%)`)
and its sample range (`fg:x`, `fg:w`). A category's share is the union of the ranges
of its frames over all samples, so a frame nested in another of the same category
is not counted twice. Categories overlap (JSON inside pydantic inside a use case):
the shares are inclusive and do not add up to 100 %.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable

# (name, does a frame (function, file) belong to it): in report order.
CATEGORIES: list[tuple[str, Callable[[str, str], bool]]] = [
    # py-spy counts the event loop's epoll_wait as busy: time waiting for the next record.
    ("event loop waiting (epoll)", lambda fn, file: fn == "EpollSelector.select"),
    # The send() system call of every round trip, to PostgreSQL and to the broker.
    ("socket writes (round trips)", lambda fn, file: fn == "_SelectorSocketTransport.write"),
    ("SQL (asyncpg, with its socket writes)", lambda fn, file: file.startswith("asyncpg/")),
    ("Kafka client (aiokafka)", lambda fn, file: file.startswith("aiokafka/")),
    (
        "FastStream",
        lambda fn, file: file.startswith(("faststream/", "fast_depends/")),
    ),
    (
        "use cases (services/<name>/)",
        lambda fn, file: bool(re.match(r"services/(?!lib/)[^/]+/(?!__main__|app\.py)", file)),
    ),
    ("outbox relay", lambda fn, file: fn.startswith("OutboxRelay.")),
    (
        "logging (structlog, logging)",
        lambda fn, file: file.startswith(("structlog/", "logging/")),
    ),
    (
        "validation (pydantic)",
        lambda fn, file: file.startswith(("pydantic/", "pydantic_core/", "email_validator/")),
    ),
    ("JSON", lambda fn, file: file.startswith(("json/", "orjson"))),
    ("tracing (opentelemetry)", lambda fn, file: file.startswith("opentelemetry/")),
    ("metrics (prometheus_client)", lambda fn, file: file.startswith("prometheus_client/")),
    (
        "HTTP (uvicorn, starlette, httpx)",
        lambda fn, file: file.startswith(("uvicorn/", "starlette/", "fastapi/", "httpx/", "h11/")),
    ),
]

_FRAME = re.compile(
    r'<title>(?P<title>[^<]*)</title><rect[^>]*?fg:x="(?P<x>\d+)" fg:w="(?P<w>\d+)"'
)
_NAME = re.compile(r"^(?P<fn>.*?) \((?P<file>[^()]*?)(?::\d+)?\) \([\d,]+ samples?, [\d.]+%\)$")
_ROOT = re.compile(r"<title>all \((?P<n>[\d,]+) samples?, 100%\)</title>")


def frames(svg: str) -> list[tuple[str, str, int, int]]:
    """(function, file, first sample, samples) of every frame but the root."""
    out = []
    for match in _FRAME.finditer(svg):
        name = _NAME.match(html.unescape(match["title"]))
        if name is not None:
            out.append((name["fn"], name["file"], int(match["x"]), int(match["w"])))
    return out


def total_samples(svg: str) -> int:
    root = _ROOT.search(svg)
    return int(root["n"].replace(",", "")) if root else 0


def _union(ranges: list[tuple[int, int]]) -> int:
    covered, end = 0, -1
    for start, stop in sorted(ranges):
        if stop <= end:
            continue
        covered += stop - max(start, end)
        end = stop
    return covered


def where_time_goes(svg: str) -> dict[str, float]:
    """{category: share of the busy samples (0..1)}, plus "samples": the busy samples."""
    total = total_samples(svg)
    parsed = frames(svg)
    shares: dict[str, float] = {"samples": float(total)}
    for name, belongs in CATEGORIES:
        ranges = [(x, x + w) for fn, file, x, w in parsed if belongs(fn, file)]
        shares[name] = _union(ranges) / total if total else 0.0
    return shares
