"""services/tools/bench/flame.py: shares of a py-spy flame graph per kind of work, no servers."""

from __future__ import annotations

import pytest

from services.tools.bench.flame import frames, total_samples, where_time_goes
from services.tools.bench.report import flame_table


def frame(title: str, x: int, w: int, y: int) -> str:
    return (
        f'<g><title>{title} ({w} samples, 1%)</title><rect x="0%" y="{y}" width="1%" '
        f'height="15" fill="rgb(0,0,0)" fg:x="{x}" fg:w="{w}"/><text></text></g>'
    )


# 100 samples: a use case (60) calling asyncpg (40, of which 30 in a nested asyncpg frame
# and 25 of those in the socket write), and the event loop waiting (40).
SVG = "".join(
    [
        '<svg><g><title>all (100 samples, 100%)</title><rect fg:x="0" fg:w="100"/></g>',
        frame("main (services/intake/__main__.py:4)", 0, 100, 20),
        frame("Intake._submitted (services/intake/usecases.py:120)", 0, 60, 36),
        frame("Connection.execute (asyncpg/connection.py:350)", 10, 40, 52),
        frame("Connection._do_execute (asyncpg/connection.py:2000)", 15, 30, 68),
        frame("_SelectorSocketTransport.write (asyncio/selector_events.py:1000)", 15, 25, 84),
        frame("EpollSelector.select (selectors.py:468)", 60, 40, 36),
        frame("Handler.&lt;locals&gt;.f (structlog/_log.py:1)", 55, 5, 52),
    ]
)


def test_frames_read_function_file_and_sample_range() -> None:
    parsed = frames(SVG)
    assert parsed[0] == ("main", "services/intake/__main__.py", 0, 100)
    assert ("Handler.<locals>.f", "structlog/_log.py", 55, 5) in parsed
    assert total_samples(SVG) == 100


def test_nested_frames_of_one_category_count_once() -> None:
    shares = where_time_goes(SVG)
    assert shares["samples"] == 100
    assert shares["SQL (asyncpg, with its socket writes)"] == pytest.approx(0.40)
    assert shares["socket writes (round trips)"] == pytest.approx(0.25)
    assert shares["event loop waiting (epoll)"] == pytest.approx(0.40)
    assert shares["logging (structlog, logging)"] == pytest.approx(0.05)
    # The entry point is not a use case; the handler is (inclusive of what it calls).
    assert shares["use cases (services/<name>/)"] == pytest.approx(0.60)
    assert shares["Kafka client (aiokafka)"] == 0


def test_an_empty_or_foreign_svg_gives_zero_shares() -> None:
    shares = where_time_goes("<svg></svg>")
    assert shares["samples"] == 0
    assert all(v == 0 for v in shares.values())


def test_flame_table_has_a_column_per_service_and_a_row_per_category() -> None:
    lines = flame_table({"outcome": where_time_goes(SVG), "intake": where_time_goes(SVG)})
    assert "| | intake | outcome |" in lines
    assert "| samples | 100 | 100 |" in lines
    assert "| socket writes (round trips) | 25% | 25% |" in lines
    assert flame_table(None) == []
