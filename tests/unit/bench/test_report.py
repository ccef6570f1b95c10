"""The benchmark's bookkeeping: percentiles, targets and the Markdown report, no servers."""

from __future__ import annotations

import math
from typing import Any

import pytest

from services.tools.bench.report import (
    batched_vs_naive_cpu,
    evaluate_targets,
    figures,
    latency_groups,
    percentile,
    percentiles,
    raw_comparison,
    render_markdown,
    throughput_bars,
)


def a_result(**overrides: Any) -> dict[str, Any]:
    result: dict[str, Any] = {
        "date": "2026-01-02T03:04:05+00:00",
        "machine": {
            "cpu_model": "Test CPU",
            "cores": 2,
            "ram_gb": 8.0,
            "python": "3.11.7",
            "os": "Linux",
            "infrastructure": "embedded",
        },
        "settings": {"mode": "quick", "command": "python -m services.tools.bench --quick"},
        "raw": {
            "kafka": {
                "messages": 10_000,
                "message_bytes": 1_030,
                "produce_rate": 30_000.0,
                "consume_rate": 40_000.0,
                "round_trip_rate": 10_000.0,
                "latency_ms": {"p50": 5.0, "p95": 8.0, "p99": 10.0},
                "latency_achieved_rate": 5_000.0,
            },
            "postgres": {
                "batch_rows": 5_000,
                "batch_rows_per_s": 30_000.0,
                "single_rows": 2_000,
                "single_rows_per_s": 4_000.0,
            },
        },
        "intake": {
            "batched": {
                "referrals": 2_000,
                "rate": 2_500.0,
                "steady_rate": 2_600.0,
                "latency_ms": {"p50": 40.0, "p95": 70.0, "p99": 90.0},
                "latency_achieved_rate": 1_250.0,
            },
            "naive": {
                "referrals": 2_000,
                "rate": 500.0,
                "latency_ms": {"p50": 50.0, "p95": 90.0, "p99": 150.0},
            },
        },
        "loop": {
            "referrals": 300,
            "rate": 300.0,
            "updates_per_referral": 9.0,
            "case_events_per_referral": 11.0,
        },
        "scale": {"cases": 1_000_000, "intake": {"rate": 2_000.0}, "ratio": 0.8},
        "memory": {
            "peak_mb": {
                "intake": 80.0,
                "referral": 75.0,
                "scheduling": 74.0,
                "outcome": 210.0,
                "console": 60.0,
            },
            "infrastructure_peak_mb": {"broker": 100.0},
        },
        "timings_s": {"raw kafka": 2.0, "total": 300.0},
        "errors": [],
    }
    result.update(overrides)
    return result


def by_name(result: dict[str, Any]) -> dict[str, Any]:
    return {t.name: t for t in evaluate_targets(result)}


def test_percentile_interpolates_between_closest_ranks() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(values, 50) == pytest.approx(2.5)
    assert percentile(list(range(1, 101)), 99) == pytest.approx(99.01)


def test_percentile_does_not_depend_on_order() -> None:
    assert percentile([5.0, 1.0, 3.0], 50) == 3.0


def test_percentile_rejects_q_outside_0_to_100() -> None:
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_percentiles_of_nothing_are_nan_with_count_zero() -> None:
    pct = percentiles([])
    assert pct["count"] == 0
    assert math.isnan(pct["p99"])


def test_percentiles_summarise_a_sample() -> None:
    pct = percentiles([float(v) for v in range(1, 1001)])
    assert pct["count"] == 1000
    assert pct["p50"] == pytest.approx(500.5)
    assert pct["max"] == 1000.0
    assert pct["mean"] == pytest.approx(500.5)


def test_intake_throughput_is_met_at_a_fifth_of_the_raw_round_trip() -> None:
    target = by_name(a_result())["intake throughput"]
    assert target.value == pytest.approx(0.25)
    assert target.met is True
    assert target.verdict == "met"
    assert "25.0%" in target.measured


def test_intake_throughput_below_a_fifth_is_missed() -> None:
    result = a_result()
    result["intake"]["batched"]["rate"] = 1_999.0
    target = by_name(result)["intake throughput"]
    assert target.met is False
    assert target.verdict == "missed"


def test_latency_target_compares_p99_with_ten_times_the_raw_p99() -> None:
    target = by_name(a_result())["intake latency"]
    assert target.threshold == pytest.approx(100.0)
    assert target.met is True
    result = a_result()
    result["intake"]["batched"]["latency_ms"]["p99"] = 100.1
    assert by_name(result)["intake latency"].met is False


def test_loop_target_is_three_percent_of_the_raw_rate() -> None:
    assert by_name(a_result())["whole-loop throughput"].met is True
    result = a_result()
    result["loop"]["rate"] = 299.0
    assert by_name(result)["whole-loop throughput"].met is False


def test_scale_ratio_of_exactly_the_threshold_is_met() -> None:
    target = by_name(a_result())["scale"]
    assert target.met is True
    assert "1,000,000" in target.rule


def test_memory_target_per_process_including_other_system_processes() -> None:
    targets = by_name(a_result())
    assert targets["memory intake"].met is True
    assert targets["memory outcome"].met is False
    assert targets["memory outcome"].measured == "210 MB"
    assert targets["memory console"].met is True


def test_naive_gain_is_reported_without_a_verdict() -> None:
    target = by_name(a_result())["batched vs naive"]
    assert target.value == pytest.approx(5.0)
    assert target.met is None
    assert target.verdict == "report only"


def test_missing_phases_are_not_measured_rather_than_failing() -> None:
    result = a_result(loop=None, scale={}, memory={})
    del result["intake"]["naive"]
    targets = by_name(result)
    assert targets["whole-loop throughput"].met is None
    assert targets["whole-loop throughput"].measured == "not measured"
    assert targets["scale"].verdict == "n/a"
    assert targets["memory intake"].measured == "not measured"
    assert targets["batched vs naive"].verdict == "n/a"
    # The rest is still evaluated.
    assert targets["intake throughput"].met is True


def test_nan_figures_count_as_not_measured() -> None:
    result = a_result()
    result["intake"]["batched"]["latency_ms"] = percentiles([])
    assert by_name(result)["intake latency"].met is None


def test_markdown_names_the_machine_every_target_and_every_figure() -> None:
    result = a_result()
    text = render_markdown(result, evaluate_targets(result))
    assert "Test CPU, 2 cores, 8.00 GB RAM, Python 3.11.7" in text
    assert "infrastructure: embedded" in text
    assert "2026-01-02T03:04:05+00:00" in text
    for name in ("intake throughput", "intake latency", "whole-loop throughput", "scale"):
        assert f"| {name} |" in text
    assert "| met |" in text
    assert "| missed |" in text
    assert "| report only |" in text
    for what, value in figures(result):
        assert f"| {what} | {value} |" in text
    assert "10,000/s" in text
    assert "| peak RSS outcome | 210 MB |" in text


def test_markdown_lists_problems_and_cpu_per_phase() -> None:
    result = a_result(errors=["intake naive: PhaseTimeout: 10/2000"])
    result["memory"]["cpu_seconds_by_phase"] = {"intake batched": {"intake": 3.0, "broker": 1.0}}
    result["memory"]["machine_busy_cpu_seconds_by_phase"] = {"intake batched": 10.0}
    text = render_markdown(result, evaluate_targets(result))
    assert "- intake naive: PhaseTimeout: 10/2000" in text
    assert "| intake batched | 3.00 | 1.00 | 10.00 | 6.00 |" in text


def test_markdown_cells_escape_pipes() -> None:
    result = a_result(errors=["a | b"])
    assert "a \\| b" in render_markdown(result, [])


def test_chart_series_leave_missing_figures_out() -> None:
    result = a_result(loop={})
    labels = [label for label, _ in throughput_bars(result)]
    assert "whole loop" not in labels
    assert labels[:3] == ["raw produce", "raw consume", "raw round trip"]
    groups = dict(latency_groups(result))
    assert groups["raw round trip"] == {"p50": 5.0, "p95": 8.0, "p99": 10.0}
    assert "intake, loaded store" not in groups


def test_cpu_cost_per_referral_is_a_figure_when_measured() -> None:
    result = a_result()
    result["intake"]["batched"]["cpu"] = {
        "cpu_ms_per_item": 12.5,
        "cpu_ms_per_item_by_process": {"postgresql": 4.0, "intake": 3.5},
        "cpu_bound_rate": 160.0,
        "outside_cpu_share": 0.42,
    }
    rows = dict(figures(result))
    cost = rows["intake, batched consumers: CPU per referral (services, broker, PostgreSQL)"]
    assert cost == "12.50 ms (intake 3.50, postgresql 4.00)"
    assert rows["intake, batched consumers: rate if CPU-bound on this machine's cores alone"] == (
        "160/s"
    )
    assert rows["intake, batched consumers: machine CPU taken by work outside the benchmark"] == (
        "42%"
    )
    assert not any("CPU per" in what for what in dict(figures(a_result())))


def test_raw_comparison_gives_rate_share_and_cpu_in_raw_messages() -> None:
    c = raw_comparison(250.0, 12.0, 10_000.0, 0.03)
    assert c["rate_share"] == pytest.approx(0.025)
    assert c["cpu_in_raw_messages"] == pytest.approx(400.0)
    assert c["cpu_share"] == pytest.approx(0.0025)


def test_raw_comparison_leaves_out_what_it_cannot_compute() -> None:
    assert raw_comparison(250.0, None, 10_000.0, 0.03) == {"rate_share": 0.025}
    assert raw_comparison(None, 12.0, None, 0.0) == {}
    assert raw_comparison(float("nan"), 12.0, 10_000.0, None) == {}


def test_report_shows_raw_cpu_per_message_and_each_run_against_it() -> None:
    result = a_result()
    result["raw"]["kafka"]["cpu_ms_per_message"] = 0.05
    result["intake"]["batched"]["cpu"] = {"cpu_ms_per_item": 10.0, "cpu_bound_rate": 200.0}
    rows = dict(figures(result))
    assert rows["raw Kafka round trip: CPU per message (broker and the raw client)"] == "0.050 ms"
    assert rows["intake, batched consumers: rate as a share of the raw round-trip rate"] == "25.00%"
    assert (
        rows[
            "intake, batched consumers: CPU per referral in raw round-trip messages "
            "(share of raw if CPU-bound)"
        ]
        == "200 (0.50%)"
    )
    # Without the raw run's CPU the ratio is left out, not made up.
    del result["raw"]["kafka"]["cpu_ms_per_message"]
    assert not any("raw round-trip messages" in what for what in dict(figures(result)))


def test_a_quick_run_writes_to_quick_and_never_over_the_full_run() -> None:
    from services.lib.runtime.settings import REPO_ROOT
    from services.tools.bench.__main__ import parse_args

    assert parse_args(["--quick"]).out == REPO_ROOT / "docs" / "bench" / "quick"
    assert parse_args([]).out == REPO_ROOT / "docs" / "bench"
    with pytest.raises(SystemExit):
        parse_args(["--quick", "--out", str(REPO_ROOT / "docs" / "bench")])


def test_batched_vs_naive_compares_cpu_per_referral_when_both_were_measured() -> None:
    result = a_result()
    assert batched_vs_naive_cpu(result) is None
    result["intake"]["batched"]["cpu"] = {"cpu_ms_per_item": 8.0}
    result["intake"]["naive"]["cpu"] = {"cpu_ms_per_item": 36.0}
    assert batched_vs_naive_cpu(result) == pytest.approx(4.5)
    rows = dict(figures(result))
    assert rows["batched vs one commit per message: CPU per referral, naive / batched"] == "4.5 x"


def test_console_queue_target_is_a_p95_under_150_ms_with_the_seeded_tasks() -> None:
    result = a_result()
    queue = {t.name: t for t in evaluate_targets(result)}["console queue"]
    assert queue.verdict == "n/a"
    result["queue"] = {
        "seed": {"tasks": 100_000},
        "requests": 90,
        "rows_per_page": 200,
        "latency_ms": {"p50": 60.0, "p95": 149.0, "p99": 300.0},
        "by_request": {"deeper pages": {"p50": 70.0, "p95": 90.0, "p99": 95.0}},
    }
    queue = {t.name: t for t in evaluate_targets(result)}["console queue"]
    assert queue.verdict == "met"
    assert queue.rule == "/api/queue p95 < 150 ms with 100,000 open tasks in the centre"
    result["queue"]["latency_ms"]["p95"] = 150.0
    assert {t.name: t for t in evaluate_targets(result)}["console queue"].verdict == "missed"
    rows = dict(figures(result))
    assert rows["console /api/queue deeper pages p50/p95/p99"] == "70.0 ms / 90.0 ms / 95.0 ms"


def test_queue_figures_show_cpu_per_request_background_and_each_sorts_plan() -> None:
    result = a_result()
    result["queue"] = {
        "seed": {"tasks": 100_000},
        "requests": 90,
        "rows_per_page": 200,
        "latency_ms": {"p50": 60.0, "p95": 120.0, "p99": 300.0},
        "cpu_ms_per_request": {"console": 30.0, "intake": 10.5},
        "background_cpu_per_s": {"console": 0.009, "intake": 0.05},
        "machine_busy": 0.5,
        "plans": {
            "priority": {
                "scans": ["Index Scan on tasks_queue_priority"],
                "seq_scan": False,
                "execution_ms": 0.85,
            }
        },
    }
    rows = dict(figures(result))
    cpu = rows[
        "console /api/queue CPU per request, less the idle background (machine busy while timed)"
    ]
    assert cpu == "console 30.00 ms, intake 10.50 ms, sum 40.50 ms (50.00 % busy)"
    background = rows["queue processes' CPU per second with no request (background)"]
    assert background == "console 9.00 ms/s, intake 50.00 ms/s"
    plan = rows["queue query plan, sort priority (EXPLAIN ANALYZE in referral)"]
    assert plan == "Index Scan on tasks_queue_priority; 0.85 ms"
