"""docs/chaos/result.json (everything, for tools) and docs/chaos/result.md (for people)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .verify import TERMINAL


def write(out_dir: Path, run: dict[str, Any]) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "result.json"
    md_path = out_dir / "result.md"
    json_path.write_text(json.dumps(run, indent=2, ensure_ascii=False, default=str) + "\n")
    md_path.write_text(markdown(run))
    return json_path, md_path


def verdict_line(run: dict[str, Any]) -> str:
    parts = [f"chaos verdict: {run['verdict']}"]
    for scenario in run["scenarios"]:
        counts = scenario.get("counts") or {}
        parts.append(
            f"  {scenario['name']:<14} {scenario['verdict']:<12} "
            f"sent {counts.get('sent', 0):>5}  terminal {counts.get('terminal', 0):>5}  "
            f"lost {counts.get('lost', 0)}  duplicated {counts.get('duplicated', 0)}  "
            f"out-of-order {counts.get('out_of_order', 0)}  stuck {counts.get('stuck', 0)}  "
            f"undrained {counts.get('undrained', 0)}  "
            f"faults {counts.get('faults_injected', 0)}/{counts.get('faults_planned', 0)}"
        )
    return "\n".join(parts)


def markdown(run: dict[str, Any]) -> str:
    lines = [
        "# Chaos run",
        "",
        f"Verdict: **{run['verdict']}**",
        "",
        f"`{run['command']}` — seed {run['seed']}, {run['referrals']} referrals per scenario"
        f"{' (quick)' if run['quick'] else ''}, hospitals {', '.join(run['hospitals'])}, "
        f"started {run['started']}, {run['duration_s']:.0f} s in all.",
        "",
        "Each scenario runs on a fresh system (broker, PostgreSQL, the four services) with",
        "simulated hospitals and coordinators, while its faults are injected; then it waits",
        "for quiet and checks the hospitals' topics and the four databases (see",
        "`services/tools/chaos/verify.py` for the rules).",
        "",
        "| scenario | verdict | sent | terminal | "
        + " | ".join(TERMINAL)
        + " | lost | duplicated | out of order | stuck | undrained | faults |",
        "|---|---|---:|---:|" + "---:|" * len(TERMINAL) + "---:|---:|---:|---:|---:|---:|",
    ]
    for scenario in run["scenarios"]:
        c = scenario.get("counts") or {}
        by_status = c.get("terminal_by_status") or {}
        lines.append(
            f"| {scenario['name']} | {scenario['verdict']} | {c.get('sent', 0)} | "
            f"{c.get('terminal', 0)} | "
            + " | ".join(str(by_status.get(s, 0)) for s in TERMINAL)
            + f" | {c.get('lost', 0)} | {c.get('duplicated', 0)} | {c.get('out_of_order', 0)} | "
            f"{c.get('stuck', 0)} | {c.get('undrained', 0)} | "
            f"{c.get('faults_injected', 0)}/{c.get('faults_planned', 0)} |"
        )
    for scenario in run["scenarios"]:
        lines += ["", f"## {scenario['name']}: {scenario['verdict']}", "", scenario["title"], ""]
        timings = scenario.get("timings") or {}
        lines.append(
            f"{scenario.get('duration_s', 0):.0f} s in all"
            + (f" (load {timings['load_s']:.0f} s" if "load_s" in timings else " (")
            + (f", quiet after {timings['quiet_s']:.0f} s)" if "quiet_s" in timings else ")")
            + f"; infrastructure {scenario.get('infrastructure') or '?'}; system in "
            f"`{scenario.get('system_dir', '')}`."
        )
        if scenario.get("faults"):
            lines += ["", "Faults as injected:", ""]
            for event in scenario["faults"]:
                lines.append(
                    f"- {event['at_s']:.1f} s: {event['action']} {event['target']}"
                    + (f" ({event['detail']})" if event.get("detail") else "")
                )
        counts = scenario.get("counts") or {}
        if counts:
            lines += [
                "",
                f"Updates read back: {counts.get('updates_read', 0)} "
                f"({counts.get('repeats_dropped', 0)} repeats of one ce_id dropped, as the "
                "contract allows).",
            ]
        if scenario.get("notes"):
            lines += ["", "Notes:", ""] + [f"- {note}" for note in scenario["notes"]]
        problems = scenario.get("problems") or []
        if problems:
            lines += ["", "Problems:", ""]
            for problem in problems[:40]:
                where = (
                    f" `{problem['hospital_id']}/{problem['referral_id']}`"
                    if problem.get("referral_id")
                    else ""
                )
                lines.append(
                    f"- **{problem['kind']}** {problem['what']}{where}: {problem['detail']}"
                )
                trail = (problem.get("evidence") or {}).get("trail")
                if trail:
                    lines.append(f"  - trail: {' → '.join(trail)}")
            if len(problems) > 40:
                lines.append(f"- … {len(problems) - 40} more in result.json")
        warnings = scenario.get("log_warnings") or {}
        if warnings:
            lines += ["", "Warnings and errors in the services' logs:", ""]
            for log, events in warnings.items():
                summary = "; ".join(f"{event} x{n}" for event, n in list(events.items())[:6])
                lines.append(f"- {log}: {summary}")
        evidence = scenario.get("log_evidence") or {}
        if evidence:
            lines += ["", "Log lines about the referrals and cases above:", ""]
            for needle, found in list(evidence.items())[:6]:
                lines += [f"`{needle}`:", "", "```", *found[:6], "```", ""]
    return "\n".join(lines) + "\n"
