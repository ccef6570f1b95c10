"""The benchmark's bookkeeping: percentiles, targets and the Markdown report, no servers."""

from __future__ import annotations

import math
from typing import Any

import pytest

from services.tools.bench.report import (
    batched_vs_naive_cpu,
    before_after,
    chaos_summary,
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


def test_intake_throughput_is_met_at_a_tenth_of_the_raw_round_trip_or_more() -> None:
    target = by_name(a_result())["intake throughput"]
    assert target.value == pytest.approx(0.25)
    assert target.met is True
    assert target.verdict == "met"
    assert "25.0%" in target.measured


def test_intake_throughput_below_a_tenth_is_missed() -> None:
    result = a_result()
    result["intake"]["batched"]["rate"] = 999.0
    target = by_name(result)["intake throughput"]
    assert target.met is False
    assert target.verdict == "missed"
    result["intake"]["batched"]["rate"] = 1_000.0
    assert by_name(result)["intake throughput"].met is True


def test_latency_target_compares_p99_with_ten_times_the_raw_p99() -> None:
    target = by_name(a_result())["intake latency, empty store"]
    assert target.threshold == pytest.approx(100.0)
    assert target.met is True
    result = a_result()
    result["intake"]["batched"]["latency_ms"]["p99"] = 100.1
    assert by_name(result)["intake latency, empty store"].met is False


def test_loaded_store_latency_is_its_own_target_against_the_same_limit() -> None:
    result = a_result()
    assert by_name(result)["intake latency, loaded store"].verdict == "n/a"
    result["scale"]["intake"]["latency_ms"] = {"p50": 50.0, "p95": 80.0, "p99": 100.0}
    target = by_name(result)["intake latency, loaded store"]
    assert target.met is True
    assert target.threshold == pytest.approx(100.0)
    assert "1,000,000 cases stored" in target.rule
    result["scale"]["intake"]["latency_ms"]["p99"] = 100.1
    assert by_name(result)["intake latency, loaded store"].verdict == "missed"
    # The empty store's target does not look at the loaded store's latency.
    assert by_name(result)["intake latency, empty store"].met is True


def test_intake_goal_of_a_fifth_is_reported_without_a_verdict() -> None:
    goal = by_name(a_result())["intake throughput goal"]
    assert goal.verdict == "report only"
    assert goal.value == pytest.approx(0.25)
    assert goal.measured.endswith(": reached")
    result = a_result()
    result["intake"]["batched"]["rate"] = 1_500.0
    goal = by_name(result)["intake throughput goal"]
    assert goal.verdict == "report only"
    assert goal.measured.startswith("15.0% of raw")
    assert goal.measured.endswith(": not reached")
    del result["raw"]
    assert by_name(result)["intake throughput goal"].verdict == "n/a"


def test_loop_target_is_one_percent_of_the_raw_rate() -> None:
    result = a_result()
    result["loop"]["rate"] = 100.0
    assert by_name(result)["whole-loop throughput"].met is True
    result["loop"]["rate"] = 99.0
    assert by_name(result)["whole-loop throughput"].met is False


def with_scale_cpu(empty: float, loaded: float) -> dict[str, Any]:
    result = a_result()
    result["intake"]["batched"]["cpu"] = {"cpu_ms_per_item": empty}
    result["scale"]["intake"]["cpu"] = {"cpu_ms_per_item": loaded}
    return result


def test_scale_target_is_cpu_per_referral_within_a_quarter_more_than_empty() -> None:
    target = by_name(with_scale_cpu(8.0, 10.0))["scale"]
    assert target.value == pytest.approx(1.25)
    assert target.met is True
    assert "1,000,000" in target.rule
    assert target.measured == "1.25 x (10.00 ms vs 8.00 ms per referral)"
    assert by_name(with_scale_cpu(8.0, 10.1))["scale"].verdict == "missed"


def test_scale_target_ignores_the_rate_ratio_which_stays_a_figure() -> None:
    # a_result's rate ratio is 0.8, and no CPU was measured: not measured, not missed.
    result = a_result()
    assert by_name(result)["scale"].verdict == "n/a"
    rows = dict(figures(with_scale_cpu(8.0, 6.0)))
    assert rows["scale ratio (loaded / empty store)"] == "0.80"
    assert rows["scale: CPU per referral, loaded / empty store"] == "0.75"


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
    assert by_name(result)["intake latency, empty store"].met is None


def test_markdown_names_the_machine_every_target_and_every_figure() -> None:
    result = a_result()
    text = render_markdown(result, evaluate_targets(result))
    assert "Test CPU, 2 cores, 8.00 GB RAM, Python 3.11.7" in text
    assert "infrastructure: embedded" in text
    assert "2026-01-02T03:04:05+00:00" in text
    for name in (
        "intake throughput",
        "intake throughput goal",
        "intake latency, empty store",
        "intake latency, loaded store",
        "whole-loop throughput",
        "scale",
        "chaos",
    ):
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


def a_chaos_run(*verdicts: str, quick: bool = False) -> dict[str, Any]:
    """The shape services/tools/chaos/report.py writes (docs/chaos/result.json)."""
    names = ["kill", "two-instances", "broker-freeze", "postgres", "slow-consumer"]
    return {
        "command": "python -m services.tools.chaos --seed 2026",
        "quick": quick,
        "referrals": 2000,
        "started": "2026-11-27T06:52:42+00:00",
        "verdict": "PASS" if all(v == "PASS" for v in verdicts) else "FAIL",
        "scenarios": [
            {"name": name, "verdict": verdict, "counts": {"lost": 0}}
            for name, verdict in zip(names, verdicts, strict=False)
        ],
    }


def test_chaos_summary_keeps_verdict_start_and_each_scenarios_verdict() -> None:
    summary = chaos_summary(a_chaos_run("PASS", "FAIL"), "docs/chaos/result.json")
    assert summary == {
        "source": "docs/chaos/result.json",
        "command": "python -m services.tools.chaos --seed 2026",
        "started": "2026-11-27T06:52:42+00:00",
        "quick": False,
        "verdict": "FAIL",
        "scenarios": {"kill": "PASS", "two-instances": "FAIL"},
    }
    assert chaos_summary(None, "x") is None
    assert chaos_summary({"scenarios": []}, "x") is None


def test_chaos_target_is_met_when_make_chaos_passed_every_scenario() -> None:
    result = a_result(chaos=chaos_summary(a_chaos_run(*["PASS"] * 5), "docs/chaos/result.json"))
    target = by_name(result)["chaos"]
    assert target.verdict == "met"
    assert "run separately" in target.rule
    assert "started 2026-11-27T06:52:42+00:00" in target.measured
    assert "slow-consumer PASS" in target.measured
    assert "from docs/chaos/result.json" in target.measured


def test_chaos_target_is_missed_when_a_scenario_failed() -> None:
    run = a_chaos_run("PASS", "PASS", "FAIL", "PASS", "PASS")
    target = by_name(a_result(chaos=chaos_summary(run, "r.json")))["chaos"]
    assert target.verdict == "missed"
    assert "broker-freeze FAIL" in target.measured
    # A verdict of PASS with a failed scenario in it is not trusted either.
    run["verdict"] = "PASS"
    assert by_name(a_result(chaos=chaos_summary(run, "r.json")))["chaos"].verdict == "missed"
    # Nor is a PASS with no scenario at all.
    empty = chaos_summary({"verdict": "PASS", "scenarios": []}, "r.json")
    assert by_name(a_result(chaos=empty))["chaos"].verdict == "missed"


def test_chaos_target_is_not_measured_without_a_result_or_from_a_quick_run() -> None:
    target = by_name(a_result())["chaos"]
    assert (target.verdict, target.measured) == ("n/a", "not measured")
    quick = chaos_summary(a_chaos_run(*["PASS"] * 5, quick=True), "docs/chaos/quick/result.json")
    target = by_name(a_result(chaos=quick))["chaos"]
    assert target.verdict == "n/a"
    assert "a quick run, not make chaos" in target.measured


def test_batched_vs_naive_reports_rate_and_cpu_per_referral_over_different_counts() -> None:
    result = a_result()
    result["intake"]["naive"]["referrals"] = 300
    result["intake"]["batched"]["cpu"] = {"cpu_ms_per_item": 8.0}
    result["intake"]["naive"]["cpu"] = {"cpu_ms_per_item": 36.0}
    target = by_name(result)["batched vs naive"]
    assert target.verdict == "report only"
    assert "different counts compare" in target.rule
    assert "over 2,000 vs 500/s over 300 referrals" in target.measured
    assert "CPU per referral naive / batched 4.5 x" in target.measured


def a_baseline() -> dict[str, Any]:
    before = a_result(date="2025-11-27T06:04:20+00:00")
    before["settings"]["mode"] = "full"
    before["raw"]["kafka"]["round_trip_rate"] = 20_000.0
    before["intake"]["batched"]["rate"] = 100.0
    before["intake"]["batched"]["latency_ms"]["p99"] = 500.0
    before["intake"]["batched"]["cpu"] = {
        "cpu_ms_per_item": 16.0,
        "cpu_ms_per_item_by_process": {"intake": 4.0, "broker": 1.0, "gone": 1.0},
        "outside_cpu_share": 0.59,
    }
    before["scale"]["intake"]["latency_ms"] = {"p99": 10_000.0}
    before["loop"]["cpu"] = {"cpu_ms_per_item": 80.0}
    return before


def an_after() -> dict[str, Any]:
    after = a_result()
    after["intake"]["batched"]["cpu"] = {
        "cpu_ms_per_item": 4.0,
        "cpu_ms_per_item_by_process": {"intake": 1.0, "broker": 0.5, "portal": 0.1},
    }
    after["loop"]["cpu"] = {"cpu_ms_per_item": 20.0}
    return after


def test_before_after_lists_the_figures_both_runs_hold_with_their_ratio() -> None:
    rows = {label: (b, a, change) for label, b, a, change in before_after(a_baseline(), an_after())}
    assert rows["raw round-trip rate"] == ("20,000/s", "10,000/s", "0.50 x")
    assert rows["intake: rate as a share of the raw round-trip rate"] == (
        "0.50%",
        "25.00%",
        "50.00 x",
    )
    assert rows["intake: CPU per referral, all processes"] == ("16.00 ms", "4.00 ms", "0.25 x")
    assert rows["intake: CPU per referral, intake"] == ("4.00 ms", "1.00 ms", "0.25 x")
    assert rows["intake: CPU per referral, broker"] == ("1.00 ms", "0.50 ms", "0.50 x")
    assert rows["intake: p99 latency at half load, empty store"] == (
        "500.0 ms",
        "90.0 ms",
        "0.18 x",
    )
    assert rows["whole loop: CPU per completed referral"] == ("80.00 ms", "20.00 ms", "0.25 x")
    # Processes only one run had, and the loaded store's latency (not in `after`), are left out.
    assert not any("gone" in label or "portal" in label for label in rows)
    assert "intake: p99 latency at half load, loaded store" not in rows


def test_before_after_of_an_older_result_shape_gives_fewer_rows_not_an_error() -> None:
    older = {"date": "2025-01-01", "raw": {"kafka": {"round_trip_rate": 5_000.0}}, "loop": None}
    rows = before_after(older, an_after())
    assert [label for label, *_ in rows] == ["raw round-trip rate"]
    assert before_after({}, an_after()) == []
    assert before_after({"raw": {"kafka": {"round_trip_rate": 0.0}}}, an_after()) == [
        ("raw round-trip rate", "0.0/s", "10,000/s", "n/a")
    ]


def test_markdown_has_a_before_vs_after_section_only_with_a_baseline() -> None:
    after = an_after()
    targets = evaluate_targets(after)
    assert "## Before vs after" not in render_markdown(after, targets)
    text = render_markdown(after, targets, a_baseline())
    assert "## Before vs after" in text
    assert "- before: 2025-11-27T06:04:20+00:00, full mode, Test CPU x 2, 59% of the CPU" in text
    assert "| intake: CPU per referral, all processes | 16.00 ms | 4.00 ms | 0.25 x |" in text
    # A baseline sharing no figure adds no empty table.
    assert "## Before vs after" not in render_markdown(after, targets, {"date": "x"})


def test_the_naive_run_has_its_own_count() -> None:
    from services.tools.bench.__main__ import FULL, QUICK, parse_args

    assert parse_args([]).naive_referrals == FULL["naive_referrals"] == 3_000
    assert parse_args(["--quick"]).naive_referrals == QUICK["referrals"]
    assert parse_args(["--naive-referrals", "500"]).naive_referrals == 500
    with pytest.raises(SystemExit):
        parse_args(["--naive-referrals", "10"])


def test_baseline_and_chaos_result_default_to_the_committed_files() -> None:
    from services.lib.runtime.settings import REPO_ROOT
    from services.tools.bench.__main__ import parse_args

    args = parse_args([])
    assert args.baseline == REPO_ROOT / "docs" / "bench" / "before-sets.json"
    assert args.chaos_result == REPO_ROOT / "docs" / "chaos" / "result.json"
