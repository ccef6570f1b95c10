"""docs/bench/result.png: throughput bars and latency percentiles (matplotlib, Agg)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from services.tools.bench.report import latency_groups, throughput_bars


def plot(result: Mapping[str, Any], path: Path) -> None:
    bars = throughput_bars(result)
    groups = latency_groups(result)
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.2))
    machine = result.get("machine") or {}
    fig.suptitle(
        f"carelink benchmark {result.get('date', '')} — {machine.get('cpu_model', '?')}, "
        f"{machine.get('cores', '?')} cores, {machine.get('infrastructure', '?')} infrastructure",
        fontsize=10,
    )

    if bars:
        labels = [label for label, _ in bars]
        values = [value for _, value in bars]
        colours = [
            "#8c8c8c" if label.startswith("raw") else "#1f77b4" if "intake" in label else "#2ca02c"
            for label in labels
        ]
        positions = range(len(bars))
        left.bar(positions, values, color=colours)
        left.set_yscale("log")
        left.set_xticks(list(positions), labels, rotation=30, ha="right", fontsize=8)
        for position, value in zip(positions, values, strict=True):
            left.annotate(f"{value:,.0f}", (position, value), ha="center", va="bottom", fontsize=7)
    left.set_ylabel("records or referrals per second (log)")
    left.set_title("throughput")

    if groups:
        width = 0.25
        for k, (name, colour) in enumerate(
            (("p50", "#9ecae1"), ("p95", "#4292c6"), ("p99", "#08519c"))
        ):
            xs = [g + (k - 1) * width for g in range(len(groups))]
            values = [pct[name] for _, pct in groups]
            right.bar(xs, values, width=width, label=name, color=colour)
            for x, value in zip(xs, values, strict=True):
                right.annotate(f"{value:,.0f}", (x, value), ha="center", va="bottom", fontsize=6)
        right.set_yscale("log")
        right.set_xticks(
            list(range(len(groups))), [g for g, _ in groups], rotation=20, ha="right", fontsize=8
        )
        right.legend(fontsize=8)
    right.set_ylabel("milliseconds (log)")
    right.set_title("latency at half the maximum rate")

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
