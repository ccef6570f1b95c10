"""Pure bookkeeping of the benchmark: percentiles, the targets, and the Markdown
report. No I/O and no servers, so it is unit-tested on its own.

The result is a plain dict (what docs/bench/result.json holds); missing parts
(a phase that failed or was skipped) show as "n/a" and their targets as not measured.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

# Targets (issue 12's numbers): reported, never asserted.
INTAKE_SHARE_OF_RAW = 0.10
INTAKE_SHARE_GOAL = 0.20  # the long-run goal: reported, no verdict
LATENCY_FACTOR_OF_RAW = 10.0
LOOP_SHARE_OF_RAW = 0.01
SCALE_CPU_FACTOR = 1.25  # CPU per referral, loaded store / empty store
SERVICE_RSS_MB = 200.0
QUEUE_P95_MS = 150.0  # the console's /api/queue with 100,000 open tasks (issue 12)
SERVICES = ("intake", "referral", "scheduling", "outcome")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear between closest ranks (numpy's default)."""
    if not values:
        return math.nan
    if not 0 <= q <= 100:
        raise ValueError("q must be between 0 and 100")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99 plus max, mean and count, as the report shows them."""
    if not values:
        return {"p50": math.nan, "p95": math.nan, "p99": math.nan, "max": math.nan,
                "mean": math.nan, "count": 0}  # fmt: skip
    return {
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": max(values),
        "mean": sum(values) / len(values),
        "count": len(values),
    }


def dig(result: Mapping[str, Any], *path: str) -> Any:
    """result[a][b]...; None when any step is missing."""
    node: Any = result
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(value) else float(value)


@dataclass(frozen=True)
class Target:
    name: str
    rule: str
    measured: str  # the number as the report shows it
    value: float | None
    threshold: float | None
    met: bool | None  # None: not measured, or reported without a threshold

    @property
    def verdict(self) -> str:
        if self.met is None:
            return "report only" if self.threshold is None and self.value is not None else "n/a"
        return "met" if self.met else "missed"


def _share_target(
    name: str, rule: str, part: float | None, whole: float | None, share: float
) -> Target:
    if part is None or not whole:
        return Target(name, rule, "not measured", None, share, None)
    ratio = part / whole
    return Target(
        name,
        rule,
        f"{fmt_rate(part)} = {ratio:.1%} of {fmt_rate(whole)}",
        ratio,
        share,
        ratio >= share,
    )


def evaluate_targets(result: Mapping[str, Any]) -> list[Target]:
    raw_rate = _number(dig(result, "raw", "kafka", "round_trip_rate"))
    raw_p99 = _number(dig(result, "raw", "kafka", "latency_ms", "p99"))
    batched = _number(dig(result, "intake", "batched", "rate"))
    targets = [
        _share_target(
            "intake throughput",
            f">= {INTAKE_SHARE_OF_RAW:.0%} of the raw broker round-trip rate",
            batched,
            raw_rate,
            INTAKE_SHARE_OF_RAW,
        ),
        _goal_target(batched, raw_rate),
        _latency_target(
            "intake latency, empty store",
            "",
            _number(dig(result, "intake", "batched", "latency_ms", "p99")),
            raw_p99,
        ),
        _latency_target(
            "intake latency, loaded store",
            f" with {fmt_count(dig(result, 'scale', 'cases'))} cases stored",
            _number(dig(result, "scale", "intake", "latency_ms", "p99")),
            raw_p99,
        ),
        _share_target(
            "whole-loop throughput",
            f">= {LOOP_SHARE_OF_RAW:.0%} of the raw broker round-trip rate",
            _number(dig(result, "loop", "rate")),
            raw_rate,
            LOOP_SHARE_OF_RAW,
        ),
        _scale_target(result),
    ]

    peaks = dig(result, "memory", "peak_mb") or {}
    for service in _processes(peaks):
        mb = _number(peaks.get(service))
        rule = f"peak RSS < {SERVICE_RSS_MB:g} MB"
        targets.append(
            Target(f"memory {service}", rule, "not measured", None, SERVICE_RSS_MB, None)
            if mb is None
            else Target(
                f"memory {service}", rule, f"{mb:.0f} MB", mb, SERVICE_RSS_MB, mb < SERVICE_RSS_MB
            )
        )

    queue_p95 = _number(dig(result, "queue", "latency_ms", "p95"))
    rule = (
        f"/api/queue p95 < {QUEUE_P95_MS:g} ms with "
        f"{fmt_count(dig(result, 'queue', 'seed', 'tasks'))} open tasks in the centre"
    )
    targets.append(
        Target("console queue", rule, "not measured", None, QUEUE_P95_MS, None)
        if queue_p95 is None
        else Target(
            "console queue",
            rule,
            fmt_ms(queue_p95),
            queue_p95,
            QUEUE_P95_MS,
            queue_p95 < QUEUE_P95_MS,
        )
    )
    targets.append(_chaos_target(result.get("chaos")))
    targets.append(_naive_target(result))
    return targets


def _goal_target(batched: float | None, raw_rate: float | None) -> Target:
    """The long-run goal for intake: shown against the same run, without a verdict."""
    rule = f"long-run goal: {INTAKE_SHARE_GOAL:.0%} of the raw broker round-trip rate (reported)"
    if batched is None or not raw_rate:
        return Target("intake throughput goal", rule, "not measured", None, None, None)
    share = batched / raw_rate
    reached = "reached" if share >= INTAKE_SHARE_GOAL else "not reached"
    return Target(
        "intake throughput goal",
        rule,
        f"{share:.1%} of raw, {share / INTAKE_SHARE_GOAL:.0%} of the way: {reached}",
        share,
        None,
        None,
    )


def _latency_target(name: str, where: str, p99: float | None, raw_p99: float | None) -> Target:
    rule = f"p99 at half load{where} <= {LATENCY_FACTOR_OF_RAW:g} x raw round-trip p99"
    if p99 is None or raw_p99 is None:
        return Target(name, rule, "not measured", None, None, None)
    limit = LATENCY_FACTOR_OF_RAW * raw_p99
    measured = f"{fmt_ms(p99)} vs limit {fmt_ms(limit)}"
    if raw_p99 > 0:
        measured += f" ({p99 / raw_p99:.1f} x raw p99 {fmt_ms(raw_p99)})"
    return Target(name, rule, measured, p99, limit, p99 <= limit)


def scale_cpu_ratio(result: Mapping[str, Any]) -> float | None:
    """CPU per referral (services, broker, PostgreSQL) with the cases stored, over the
    empty store's; None unless both intake runs measured it."""
    empty = _number(dig(result, "intake", "batched", "cpu", "cpu_ms_per_item"))
    loaded = _number(dig(result, "scale", "intake", "cpu", "cpu_ms_per_item"))
    return loaded / empty if empty and loaded is not None else None


def _scale_target(result: Mapping[str, Any]) -> Target:
    rule = (
        f"CPU per referral with {fmt_count(dig(result, 'scale', 'cases'))} cases stored "
        f"<= {SCALE_CPU_FACTOR:g} x empty store"
    )
    ratio = scale_cpu_ratio(result)
    if ratio is None:
        return Target("scale", rule, "not measured", None, SCALE_CPU_FACTOR, None)
    loaded = dig(result, "scale", "intake", "cpu", "cpu_ms_per_item")
    empty = dig(result, "intake", "batched", "cpu", "cpu_ms_per_item")
    return Target(
        "scale",
        rule,
        f"{ratio:.2f} x ({_plain(loaded)} ms vs {_plain(empty)} ms per referral)",
        ratio,
        SCALE_CPU_FACTOR,
        ratio <= SCALE_CPU_FACTOR,
    )


def chaos_summary(run: Any, source: str) -> dict[str, Any] | None:
    """What the benchmark keeps of a chaos result (services/tools/chaos/report.py's
    result.json): verdict, start, whether it was a quick run and each scenario's
    verdict. None when `run` is not such a result."""
    if not isinstance(run, Mapping) or not isinstance(run.get("verdict"), str):
        return None
    scenarios = run.get("scenarios")
    return {
        "source": source,
        "command": run.get("command"),
        "started": run.get("started"),
        "quick": bool(run.get("quick")),
        "verdict": run["verdict"],
        "scenarios": {
            str(s.get("name")): str(s.get("verdict"))
            for s in (scenarios if isinstance(scenarios, list) else [])
            if isinstance(s, Mapping)
        },
    }


def _chaos_target(chaos: Any) -> Target:
    """`make chaos` is not run by the benchmark: its committed result is read
    (`chaos_summary`) and its verdict shown here, with its date."""
    rule = "`make chaos` passes every scenario (its committed result; run separately)"
    if not isinstance(chaos, Mapping) or not isinstance(chaos.get("verdict"), str):
        return Target("chaos", rule, "not measured", None, None, None)
    scenarios = chaos.get("scenarios") or {}
    listed = ", ".join(f"{name} {verdict}" for name, verdict in scenarios.items())
    measured = (
        f"{chaos['verdict']} ({listed or 'no scenarios'}), started {chaos.get('started') or 'n/a'}, "
        f"from {chaos.get('source') or 'n/a'}"
    )
    if chaos.get("quick"):
        # A quick run is a smoke test with fewer referrals, not `make chaos`.
        return Target("chaos", rule, measured + "; a quick run, not make chaos", None, None, None)
    passed = chaos["verdict"] == "PASS" and bool(scenarios)
    passed = passed and all(v == "PASS" for v in scenarios.values())
    return Target("chaos", rule, measured, 1.0 if passed else 0.0, 1.0, passed)


def _naive_target(result: Mapping[str, Any]) -> Target:
    batched = _number(dig(result, "intake", "batched", "rate"))
    naive = _number(dig(result, "intake", "naive", "rate"))
    gain = batched / naive if batched is not None and naive else None
    cpu_gain = batched_vs_naive_cpu(result)
    rule = (
        "gain of batched consumers over one commit per message, per referral (rates and "
        "CPU per referral, so runs of different counts compare; reported)"
    )
    parts = []
    if gain is not None:
        parts.append(
            f"rate {gain:.1f} x ({fmt_rate(batched)} over "
            f"{fmt_count(dig(result, 'intake', 'batched', 'referrals'))} vs {fmt_rate(naive)} "
            f"over {fmt_count(dig(result, 'intake', 'naive', 'referrals'))} referrals)"
        )
    if cpu_gain is not None:
        parts.append(f"CPU per referral naive / batched {cpu_gain:.1f} x")
    return Target(
        "batched vs naive",
        rule,
        "; ".join(parts) or "not measured",
        gain if gain is not None else cpu_gain,
        None,
        None,
    )


def targets_as_dicts(targets: Iterable[Target]) -> list[dict[str, Any]]:
    return [{**asdict(t), "verdict": t.verdict} for t in targets]


# -- formatting ---------------------------------------------------------------------


def fmt_rate(value: Any, unit: str = "/s") -> str:
    number = _number(value)
    if number is None:
        return "n/a"
    return f"{number:,.0f}{unit}" if number >= 100 else f"{number:,.1f}{unit}"


def fmt_ms(value: Any) -> str:
    number = _number(value)
    if number is None:
        return "n/a"
    if number >= 1000:
        return f"{number / 1000:,.2f} s"
    return f"{number:,.1f} ms" if number >= 10 else f"{number:,.2f} ms"


def fmt_count(value: Any) -> str:
    number = _number(value)
    return "n/a" if number is None else f"{number:,.0f}"


def fmt_mb(value: Any) -> str:
    number = _number(value)
    return "n/a" if number is None else f"{number:,.0f} MB"


def _latency(pct: Any) -> str:
    if not isinstance(pct, Mapping):
        return "n/a"
    return " / ".join(fmt_ms(pct.get(k)) for k in ("p50", "p95", "p99"))


def raw_comparison(
    rate: Any, cpu_ms_per_item: Any, raw_rate: Any, raw_cpu_ms_per_message: Any
) -> dict[str, float]:
    """A run measured against the raw broker round trip of the same run.

    `rate_share`: its rate as a share of the raw round-trip rate (what the targets
    use; it falls when other work shares the machine). `cpu_in_raw_messages`: how
    many raw round-trip messages' worth of CPU one item costs, and `cpu_share`, its
    inverse: the share of the raw rate the run would reach if CPU were the only
    limit for both. Both CPU figures compare across machines and loads; missing
    inputs leave their figures out.
    """
    out: dict[str, float] = {}
    rate_v, raw_rate_v = _number(rate), _number(raw_rate)
    if rate_v is not None and raw_rate_v:
        out["rate_share"] = rate_v / raw_rate_v
    cpu, raw_cpu = _number(cpu_ms_per_item), _number(raw_cpu_ms_per_message)
    if cpu and raw_cpu:
        out["cpu_in_raw_messages"] = cpu / raw_cpu
        out["cpu_share"] = raw_cpu / cpu
    return out


def batched_vs_naive_cpu(result: Mapping[str, Any]) -> float | None:
    """How many times the CPU of a batched referral one committed per message costs
    (steadier than the rate ratio on a shared machine); None unless both were measured."""
    batched = _number(dig(result, "intake", "batched", "cpu", "cpu_ms_per_item"))
    naive = _number(dig(result, "intake", "naive", "cpu", "cpu_ms_per_item"))
    return naive / batched if batched and naive is not None else None


def figures(result: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every figure of the run as (what, value), in report order."""
    rows: list[tuple[str, str]] = []
    kafka = dig(result, "raw", "kafka") or {}
    raw = (kafka.get("round_trip_rate"), kafka.get("cpu_ms_per_message"))
    size = kafka.get("message_bytes")
    rows += [
        (
            f"raw Kafka produce ({fmt_count(kafka.get('messages'))} x {fmt_count(size)} B)",
            fmt_rate(kafka.get("produce_rate")),
        ),
        ("raw Kafka consume", fmt_rate(kafka.get("consume_rate"))),
        (
            "raw Kafka round trip (first send -> last receive)",
            fmt_rate(kafka.get("round_trip_rate")),
        ),
        (
            f"raw Kafka round-trip latency p50/p95/p99 at {fmt_rate(kafka.get('latency_achieved_rate'))}",
            _latency(kafka.get("latency_ms")),
        ),
    ]
    if _number(kafka.get("cpu_ms_per_message")) is not None:
        rows.append(
            (
                "raw Kafka round trip: CPU per message (broker and the raw client)",
                _ms(kafka.get("cpu_ms_per_message")),
            )
        )
    end = dig(result, "raw", "kafka_at_end") or {}
    if end:
        rows += [
            (
                "raw Kafka round trip again at the end of the run",
                fmt_rate(end.get("round_trip_rate")),
            ),
            (
                "raw Kafka round-trip latency p50/p95/p99 at the end",
                _latency(end.get("latency_ms")),
            ),
        ]
    pg = dig(result, "raw", "postgres") or {}
    rows += [
        (
            f"raw PostgreSQL inserts, one transaction ({fmt_count(pg.get('batch_rows'))} rows)",
            fmt_rate(pg.get("batch_rows_per_s"), " rows/s"),
        ),
        (
            f"raw PostgreSQL inserts, one commit per row ({fmt_count(pg.get('single_rows'))} rows)",
            fmt_rate(pg.get("single_rows_per_s"), " rows/s"),
        ),
    ]
    for key, label in (
        ("batched", "intake, batched consumers"),
        ("naive", "intake, one commit per message"),
    ):
        run = dig(result, "intake", key) or {}
        rows += _intake_rows(label, run, raw)
    cpu_gain = batched_vs_naive_cpu(result)
    if cpu_gain is not None:
        rows.append(
            (
                "batched vs one commit per message: CPU per referral, naive / batched",
                f"{cpu_gain:.1f} x",
            )
        )
    loop = result.get("loop") or {}
    rows += [
        (
            f"whole loop to completed ({fmt_count(loop.get('referrals'))} referrals, instant staff)",
            fmt_rate(loop.get("rate")),
        ),
        ("whole loop: updates per referral", _plain(loop.get("updates_per_referral"))),
        (
            "whole loop: care.cases events per referral",
            _plain(loop.get("case_events_per_referral")),
        ),
        (
            "whole loop: burst start -> completed p50/p95/p99",
            _latency(loop.get("latency_ms")),
        ),
        *_cpu_rows("whole loop", "completed referral", loop.get("cpu")),
        *_raw_rows("whole loop", "completed referral", loop, raw),
    ]
    scale = result.get("scale") or {}
    load = scale.get("load") or {}
    rows.append(
        (
            f"scale: bulk load of {fmt_count(scale.get('cases'))} cases",
            f"{fmt_count(load.get('rows'))} rows in {_plain(load.get('seconds'))} s",
        )
    )
    rows += _intake_rows("intake over the loaded store", scale.get("intake") or {}, raw)
    rows.append(("scale ratio (loaded / empty store)", _plain(scale.get("ratio"))))
    cpu_ratio = scale_cpu_ratio(result)
    if cpu_ratio is not None:
        rows.append(("scale: CPU per referral, loaded / empty store", _plain(cpu_ratio)))
    queue = result.get("queue") or {}
    if queue:
        rows.append(
            (
                f"console /api/queue p50/p95/p99, {fmt_count(dig(queue, 'seed', 'tasks'))} open "
                f"tasks, {fmt_count(queue.get('requests'))} requests of "
                f"{fmt_count(queue.get('rows_per_page'))} rows",
                _latency(queue.get("latency_ms")),
            )
        )
        for what, pct in (queue.get("by_request") or {}).items():
            rows.append((f"console /api/queue {what} p50/p95/p99", _latency(pct)))
        cpu = queue.get("cpu_ms_per_request") or {}
        if cpu:
            rows.append(
                (
                    "console /api/queue CPU per request, less the idle background "
                    "(machine busy while timed)",
                    ", ".join(f"{k} {_plain(v)} ms" for k, v in cpu.items())
                    + f", sum {_plain(sum(cpu.values()))} ms"
                    + f" ({_plain(100 * (queue.get('machine_busy') or 0))} % busy)",
                )
            )
        background = queue.get("background_cpu_per_s") or {}
        if background:
            rows.append(
                (
                    "queue processes' CPU per second with no request (background)",
                    ", ".join(f"{k} {_plain(1000 * v)} ms/s" for k, v in background.items()),
                )
            )
        for sort, plan in (queue.get("plans") or {}).items():
            rows.append(
                (
                    f"queue query plan, sort {sort} (EXPLAIN ANALYZE in referral)",
                    f"{', '.join(plan.get('scans') or [])}; {_plain(plan.get('execution_ms'))} ms",
                )
            )
    peaks = dig(result, "memory", "peak_mb") or {}
    for service in _processes(peaks):
        rows.append((f"peak RSS {service}", fmt_mb(peaks.get(service))))
    for name, mb in (dig(result, "memory", "infrastructure_peak_mb") or {}).items():
        rows.append((f"peak RSS {name}", fmt_mb(mb)))
    return rows


def _processes(peaks: Mapping[str, Any]) -> list[str]:
    """The four services (measured or not), then any other process of the system."""
    return [*SERVICES, *sorted(k for k in peaks if k not in SERVICES)]


def _intake_rows(
    label: str, run: Mapping[str, Any], raw: tuple[Any, Any] = (None, None)
) -> list[tuple[str, str]]:
    return [
        (
            f"{label}: submissions -> received ({fmt_count(run.get('referrals'))} referrals)",
            fmt_rate(run.get("rate")),
        ),
        (f"{label}: steady rate (10th-90th percentile arrivals)", fmt_rate(run.get("steady_rate"))),
        (
            f"{label}: latency p50/p95/p99 at {fmt_rate(run.get('latency_achieved_rate'))}",
            _latency(run.get("latency_ms")),
        ),
        *_cpu_rows(label, "referral", run.get("cpu")),
        *_raw_rows(label, "referral", run, raw),
    ]


def _raw_rows(
    label: str, item: str, run: Mapping[str, Any], raw: tuple[Any, Any]
) -> list[tuple[str, str]]:
    """The run against the raw round trip of the same run: rate share and CPU ratio."""
    cpu = run.get("cpu") if isinstance(run.get("cpu"), Mapping) else {}
    c = raw_comparison(run.get("rate"), (cpu or {}).get("cpu_ms_per_item"), *raw)
    rows = []
    if "rate_share" in c:
        rows.append(
            (f"{label}: rate as a share of the raw round-trip rate", f"{c['rate_share']:.2%}")
        )
    if "cpu_in_raw_messages" in c:
        rows.append(
            (
                f"{label}: CPU per {item} in raw round-trip messages (share of raw if CPU-bound)",
                f"{_plain(c['cpu_in_raw_messages'])} ({c['cpu_share']:.2%})",
            )
        )
    return rows


def _ms(value: Any) -> str:
    number = _number(value)
    return "n/a" if number is None else f"{number:,.3f} ms"


def _cpu_rows(label: str, item: str, cpu: Any) -> list[tuple[str, str]]:
    if not isinstance(cpu, Mapping) or _number(cpu.get("cpu_ms_per_item")) is None:
        return []
    by_process = cpu.get("cpu_ms_per_item_by_process") or {}
    split = ", ".join(
        f"{name} {_plain(by_process[name])}" for name in sorted(by_process, key=_process_order)
    )
    rows = [
        (
            f"{label}: CPU per {item} (services, broker, PostgreSQL)",
            f"{_plain(cpu['cpu_ms_per_item'])} ms ({split})",
        ),
        (
            f"{label}: rate if CPU-bound on this machine's cores alone",
            fmt_rate(cpu.get("cpu_bound_rate")),
        ),
    ]
    share = _number(cpu.get("outside_cpu_share"))
    if share is not None:
        rows.append((f"{label}: machine CPU taken by work outside the benchmark", f"{share:.0%}"))
    return rows


def _plain(value: Any) -> str:
    number = _number(value)
    if number is None:
        return "n/a"
    return f"{number:,.2f}" if abs(number) < 100 else f"{number:,.0f}"


def _process_order(name: str) -> tuple[int, str]:
    order = [*SERVICES, "console", "broker", "postgresql", "bench"]
    return (order.index(name) if name in order else len(order), name)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _rate_share(result: Mapping[str, Any]) -> float | None:
    rate = _number(dig(result, "intake", "batched", "rate"))
    raw = _number(dig(result, "raw", "kafka", "round_trip_rate"))
    return rate / raw if rate is not None and raw else None


def before_after(
    before: Mapping[str, Any], after: Mapping[str, Any]
) -> list[tuple[str, str, str, str]]:
    """(figure, before, after, after / before) for the figures both results hold:
    per-process and total CPU per referral of the batched intake run, its rate as a
    share of raw, p99 latencies, the loop's CPU per completed referral and the raw
    round-trip rate. Older result.json shapes simply give fewer rows."""
    candidates: list[tuple[str, Any, Any, Any]] = [
        ("raw round-trip rate", dig(before, "raw", "kafka", "round_trip_rate"),
         dig(after, "raw", "kafka", "round_trip_rate"), fmt_rate),
        ("intake: rate as a share of the raw round-trip rate", _rate_share(before),
         _rate_share(after), lambda v: f"{v:.2%}"),
        ("intake: CPU per referral, all processes",
         dig(before, "intake", "batched", "cpu", "cpu_ms_per_item"),
         dig(after, "intake", "batched", "cpu", "cpu_ms_per_item"), _cpu_ms),
    ]  # fmt: skip
    by_before = dig(before, "intake", "batched", "cpu", "cpu_ms_per_item_by_process") or {}
    by_after = dig(after, "intake", "batched", "cpu", "cpu_ms_per_item_by_process") or {}
    for name in sorted(set(by_before) & set(by_after), key=_process_order):
        candidates.append(
            (f"intake: CPU per referral, {name}", by_before[name], by_after[name], _cpu_ms)
        )
    for label, path in (
        ("intake: p99 latency at half load, empty store", ("intake", "batched")),
        ("intake: p99 latency at half load, loaded store", ("scale", "intake")),
    ):
        candidates.append(
            (label, dig(before, *path, "latency_ms", "p99"), dig(after, *path, "latency_ms", "p99"),
             fmt_ms)
        )  # fmt: skip
    candidates.append(
        ("whole loop: CPU per completed referral", dig(before, "loop", "cpu", "cpu_ms_per_item"),
         dig(after, "loop", "cpu", "cpu_ms_per_item"), _cpu_ms)
    )  # fmt: skip
    rows = []
    for label, old, new, show in candidates:
        old_v, new_v = _number(old), _number(new)
        if old_v is None or new_v is None:
            continue
        change = f"{new_v / old_v:.2f} x" if old_v else "n/a"
        rows.append((label, show(old_v), show(new_v), change))
    return rows


def _cpu_ms(value: float) -> str:
    return f"{_plain(value)} ms"


def _run_line(result: Mapping[str, Any]) -> str:
    machine = result.get("machine") or {}
    outside = _number(dig(result, "intake", "batched", "cpu", "outside_cpu_share"))
    return (
        f"{result.get('date', 'n/a')}, {dig(result, 'settings', 'mode') or 'n/a'} mode, "
        f"{machine.get('cpu_model', 'n/a')} x {machine.get('cores', 'n/a')}"
        + ("" if outside is None else f", {outside:.0%} of the CPU outside the benchmark")
    )


def baseline_table(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> list[str]:
    """Markdown lines of the before-versus-after section; none without a baseline
    or without a figure both runs hold."""
    if not isinstance(before, Mapping):
        return []
    rows = before_after(before, after)
    if not rows:
        return []
    lines = [
        "",
        "## Before vs after",
        "",
        f"- before: {_run_line(before)}",
        f"- after (this run): {_run_line(after)}",
        "",
        "Rates depend on the machine and its other work; CPU per referral and the share "
        "of the same run's raw rate compare better.",
        "",
        "| figure | before | after | after / before |",
        "|---|---|---|---|",
    ]
    lines += [f"| {_cell(a)} | {_cell(b)} | {_cell(c)} | {d} |" for a, b, c, d in rows]
    return lines


def render_markdown(
    result: Mapping[str, Any],
    targets: Sequence[Target],
    baseline: Mapping[str, Any] | None = None,
) -> str:
    machine = result.get("machine") or {}
    lines = [
        "# carelink benchmark",
        "",
        f"- date: {result.get('date', 'n/a')}",
        f"- machine: {machine.get('cpu_model', 'n/a')}, {machine.get('cores', 'n/a')} cores, "
        f"{_plain(machine.get('ram_gb'))} GB RAM, Python {machine.get('python', 'n/a')}, "
        f"{machine.get('os', 'n/a')}",
        f"- infrastructure: {machine.get('infrastructure', 'n/a')}",
        f"- mode: {dig(result, 'settings', 'mode') or 'n/a'}; "
        f"command: `{dig(result, 'settings', 'command') or 'python -m services.tools.bench'}`",
        "",
        "## Targets",
        "",
        "| target | rule | measured | verdict |",
        "|---|---|---|---|",
    ]
    for t in targets:
        lines.append(f"| {_cell(t.name)} | {_cell(t.rule)} | {_cell(t.measured)} | {t.verdict} |")
    lines += baseline_table(baseline, result)
    lines += ["", "## Figures", "", "| figure | value |", "|---|---|"]
    for what, value in figures(result):
        lines.append(f"| {_cell(what)} | {_cell(value)} |")
    cpu = dig(result, "memory", "cpu_seconds_by_phase") or {}
    busy = dig(result, "memory", "machine_busy_cpu_seconds_by_phase") or {}
    if cpu:
        names = sorted({n for used in cpu.values() for n in used}, key=_process_order)
        lines += [
            "",
            "## CPU seconds per process and phase",
            "",
            "The last two columns: every process on the machine, and what of that was "
            "outside the benchmark (other work sharing the cores).",
            "",
            "| phase | " + " | ".join(names) + " | machine | outside |",
            "|---" * (len(names) + 3) + "|",
        ]
        for phase, used in cpu.items():
            cells = " | ".join(_plain(used.get(n)) for n in names)
            total = _number(busy.get(phase))
            outside = None if total is None else max(0.0, total - sum(used.values()))
            lines.append(f"| {_cell(phase)} | {cells} | {_plain(total)} | {_plain(outside)} |")
    lines += flame_table(result.get("flame"))
    timings = result.get("timings_s") or {}
    if timings:
        lines += ["", "## Time per phase", "", "| phase | seconds |", "|---|---|"]
        for phase, seconds in timings.items():
            lines.append(f"| {_cell(phase)} | {_plain(seconds)} |")
    errors = result.get("errors") or []
    if errors:
        lines += ["", "## Problems during the run", ""]
        lines += [f"- {_cell(str(e))}" for e in errors]
    lines += ["", "All figures come from one run; see result.json for every number.", ""]
    return "\n".join(lines)


def flame_table(flame: Any) -> list[str]:
    """Markdown lines: share of each service's busy py-spy samples per kind of work
    (`flame.where_time_goes`, inclusive, so a column does not add up to 100 %)."""
    if not isinstance(flame, Mapping) or not flame:
        return []
    services = sorted(flame, key=_process_order)
    categories = [c for c in dict.fromkeys(k for s in services for k in flame[s]) if c != "samples"]
    lines = [
        "",
        "## Where the time goes (py-spy flame graphs, intake at maximum rate)",
        "",
        "Share of each service's samples (flame/<service>.svg); inclusive, so a column "
        "does not add up to 100 %.",
        "",
        "| | " + " | ".join(services) + " |",
        "|---" * (len(services) + 1) + "|",
        "| samples | " + " | ".join(fmt_count(flame[s].get("samples")) for s in services) + " |",
    ]
    for category in categories:
        cells = []
        for service in services:
            share = _number(flame[service].get(category))
            cells.append("n/a" if share is None else f"{share:.0%}")
        lines.append(f"| {_cell(category)} | " + " | ".join(cells) + " |")
    return lines


def throughput_bars(result: Mapping[str, Any]) -> list[tuple[str, float]]:
    """(label, records per second) for the throughput chart; missing figures left out."""
    candidates = [
        ("raw produce", dig(result, "raw", "kafka", "produce_rate")),
        ("raw consume", dig(result, "raw", "kafka", "consume_rate")),
        ("raw round trip", dig(result, "raw", "kafka", "round_trip_rate")),
        ("intake batched", dig(result, "intake", "batched", "rate")),
        ("intake naive", dig(result, "intake", "naive", "rate")),
        ("intake, loaded store", dig(result, "scale", "intake", "rate")),
        ("whole loop", dig(result, "loop", "rate")),
    ]
    return [(label, float(v)) for label, v in candidates if _number(v) is not None]


def latency_groups(result: Mapping[str, Any]) -> list[tuple[str, dict[str, float]]]:
    """(label, {p50, p95, p99} in ms) for the latency chart; missing ones left out."""
    candidates = [
        ("raw round trip", dig(result, "raw", "kafka", "latency_ms")),
        ("intake batched", dig(result, "intake", "batched", "latency_ms")),
        ("intake naive", dig(result, "intake", "naive", "latency_ms")),
        ("intake, loaded store", dig(result, "scale", "intake", "latency_ms")),
    ]
    groups = []
    for label, pct in candidates:
        if isinstance(pct, Mapping) and all(
            _number(pct.get(k)) is not None for k in ("p50", "p95", "p99")
        ):
            groups.append((label, {k: float(pct[k]) for k in ("p50", "p95", "p99")}))
    return groups
