"""``python -m bench.report``: the summary (``var/bench/summary.json``), the tables and the
charts, from the stage results on disk; a number whose stage did not run is ``null``, never a
guess. The keys and their goals: docs/benchmarks.md."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.summary import build_summary

VAR = Path(__file__).resolve().parents[1] / "var" / "bench"
# Each stage's result file, var/bench/<stage>.json.
STAGES = (
    "verify",
    "drain",
    "drain_device",
    "drain_postgres",
    "drain_1m",
    "drain_before",
    "drain_after",
    "e2e",
    "shed",
)


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _raw_text(key: str, summary: dict[str, Any]) -> str:
    raw = summary["raw"][key]
    if raw is None:
        return "not measured"
    if key == "verify_vs_openssl":
        return f"{raw['project_verify_per_s']:,.0f} / {raw['openssl_verify_per_s']:,.0f} verify/s"
    if key in ("worker_drain_per_s", "device_signature_drain_per_s"):
        done = f"{raw['drained']:,} of {raw['commands']:,}"
        partial = "" if raw["complete"] else f", budget {raw['budget_s']:.0f} s spent"
        copies = raw.get("events", raw["drained"]) - raw["drained"]
        again = f"; {copies:,} events published again" if copies > 0 else ""
        return f"{done} in {raw['drain_s']:.1f} s{partial}{again}"
    if key == "e2e_vs_inline_throughput":
        bound = " (lower bound)" if raw["stack_ladder_exhausted"] else ""
        below = (
            f" (below the lowest step, {raw['lowest_step_rps']:g}/s)"
            if raw["stack_max_sustainable_rps"] == 0
            else ""
        )
        return (
            f"stack {_number(raw['stack_max_sustainable_rps'])}/s{bound}{below}"
            f" vs inline {_number(raw['inline_max_sustainable_rps'])}/s"
        )
    if key == "e2e_p99_ms_at_500rps":
        return (
            f"at {raw['rate']:g}/s: p50 {_number(raw['p50_ms'])}, p99.9 {_number(raw['p999_ms'])}"
            f" ms; {raw['errors']} errors of {raw['requests']}"
        )
    if key == "worker_drain_postgres_per_s":
        return f"{raw['drained']:,} of {raw['commands']:,} in {raw['drain_s']:.1f} s"
    if key == "drain_redone":
        return f"{raw['events']:,} events for {raw['commands']:,} commands"
    if key == "idle_p50_ms":
        floor = raw.get("kafka_floor")
        beside = f"; Kafka's two bare hops p50 {_number(floor['p50_ms'])} ms" if floor else ""
        return f"p99 {_number(raw['p99_ms'])} ms over {raw['requests']} requests{beside}"
    if key == "cpu_ms_per_request":
        parts = ", ".join(f"{name} {seconds:.1f}" for name, seconds in raw["cpu_seconds"].items())
        kafka = "" if raw["kafka_included"] else " (Kafka not measured)"
        return f"{raw['requests']:,} requests at {raw['rate']:g}/s; CPU s {parts}{kafka}"
    if key == "drain_at_1m_devices_ratio":
        return (
            f"{raw['with_customers_per_s']:,.0f}/s with {raw['customers']:,} devices vs"
            f" {raw['empty_store_per_s']:,.0f}/s"
        )
    if key == "shed_p99_ms":
        return (
            f"{raw['rate']:g}/s offered, MAX_IN_FLIGHT {raw['max_in_flight']}:"
            f" {raw['shed_share']:.0%} refused 503 (p99 {_number(raw['refused_p99_ms'])} ms),"
            f" {raw['accepted']:,} accepted, {raw['verified_in_store']:,} verified in the store"
        )
    if key == "max_rss_mib":
        peaks = raw["api_and_worker_peak_mib"]
        return ", ".join(f"{name} {mib:g}" for name, mib in sorted(peaks.items()))
    return ""


def format_table(summary: dict[str, Any]) -> str:
    rows = [("metric", "goal", "measured", "met", "raw")]
    for key, goal in summary["goals"].items():
        met = {True: "yes", False: "NO", None: "not measured"}[goal["met"]]
        rows.append((key, goal["goal"], _number(summary[key]), met, _raw_text(key, summary)))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = []
    for index, row in enumerate(rows):
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        lines.append("| " + " | ".join(cells) + " |")
        if index == 0:
            lines.append("|" + "|".join("-" * (width + 2) for width in widths) + "|")
    versions = summary["versions"]
    lines.append(
        f"\n{summary['cores']} cores; Python {versions.get('python')}, cryptography"
        f" {versions.get('cryptography')} ({versions.get('cryptography_openssl')}), openssl CLI"
        f" {versions.get('openssl_cli')}, Kafka {versions.get('kafka')}, faststream"
        f" {versions.get('faststream')}, aiokafka {versions.get('aiokafka')}"
    )
    return "\n".join(lines)


def format_ladders(e2e: dict[str, Any] | None) -> str:
    if e2e is None:
        return ""
    lines = [
        f"| {'system':<6} | {'offered/s':>9} | {'p50 ms':>8} | {'p99 ms':>8} | {'p99.9 ms':>8} |"
        f" {'errors':>6} | {'achieved/s':>10} | {'gen lag p99':>11} | sustainable |",
        f"|{'-' * 8}|{'-' * 11}|{'-' * 10}|{'-' * 10}|{'-' * 10}|{'-' * 8}|{'-' * 12}|"
        f"{'-' * 13}|{'-' * 13}|",
    ]
    for system, data in e2e["systems"].items():
        steps = list(data["steps"])
        if data.get("fixed"):
            steps.append({**data["fixed"], "system": f"{system}*"})
        for step in steps:

            def ms(value: float | None) -> str:
                return "-" if value is None else f"{value:.1f}"

            lines.append(
                f"| {step['system']:<6} | {step['rate']:>9g} | {ms(step['p50_ms']):>8} |"
                f" {ms(step['p99_ms']):>8} | {ms(step['p999_ms']):>8} | {step['errors']:>6} |"
                f" {step['achieved_rps']:>10.1f} | {ms(step['send_lag_p99_ms']):>11} |"
                f" {'yes' if step['sustainable'] else 'no':<11} |"
            )
    lines.append("(* the fixed-rate run; latency counted from each request's intended send time)")
    return "\n".join(lines)


def format_baseline(baseline: dict[str, Any] | None) -> str:
    if baseline is None:
        return "baseline: not measured in this run"
    lines = [
        f"baseline (the worker of {baseline['source']}) against today's, same harness, same run:",
        f"  drain {baseline['drain_per_s']:,.0f}/s ({baseline['commands']:,} commands,"
        f" {baseline['redone']:,} redone, {baseline['cpu_ms_per_command']} CPU ms/command)"
        f" -> today {baseline['after_drain_per_s']}/s"
        f" ({baseline['after_cpu_ms_per_command']} CPU ms/command)",
    ]
    before, after = baseline["stages_percent"] or {}, baseline["after_stages_percent"] or {}
    for stage in dict.fromkeys([*before, *after]):
        lines.append(f"  {stage:<45} {before.get(stage, 0):5.1f}% -> {after.get(stage, 0):5.1f}%")
    return "\n".join(lines)


def _load(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def _stamp(path: Path) -> str | None:
    if not path.exists():
        return None
    return datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(timespec="seconds")


def write_report(
    folder: Path = VAR, *, run: dict[str, Any] | None = None, external_kafka: bool = False
) -> dict[str, Any]:
    """Build summary.json and latency.png from the stage results in ``folder``; print."""
    from bench.environment import machine, versions
    from bench.plot import draw_latency, draw_profile

    stages = {name: folder / f"{name}.json" for name in STAGES}
    # The suite's own account (start, wall time, failures) outlives a report rebuilt later.
    run_file = folder / "run.json"
    if run is not None:
        run_file.write_text(json.dumps(run, indent=2) + "\n")
    else:
        run = _load(run_file)
    e2e = _load(stages["e2e"])
    before, after = _load(stages["drain_before"]), _load(stages["drain_after"])
    summary = build_summary(
        verify=_load(stages["verify"]),
        drain=_load(stages["drain"]),
        drain_device=_load(stages["drain_device"]),
        drain_postgres=_load(stages["drain_postgres"]),
        drain_customers=_load(stages["drain_1m"]),
        baseline={"before": before, "after": after} if before else None,
        e2e=e2e,
        machine=machine(),
        versions=versions(external_kafka=external_kafka),
        run={**(run or {}), "stage_results": {name: _stamp(p) for name, p in stages.items()}},
        shed=_load(stages["shed"]),
    )
    (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    png = folder / "latency.png"
    drawn = draw_latency(e2e, png) if e2e is not None else False
    profile_png = folder / "worker_profile.png"
    profiled = (
        before is not None
        and after is not None
        and before.get("profile") is not None
        and after.get("profile") is not None
        and draw_profile(before, after, profile_png)
    )
    print("\n" + format_ladders(e2e))
    print("\n" + format_table(summary))
    print("\n" + format_baseline(summary.get("baseline")))
    charts = [str(path) for path, made in ((png, drawn), (profile_png, profiled)) if made]
    print(f"\nwritten {folder / 'summary.json'}" + "".join(f" and {c}" for c in charts))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--folder", type=Path, default=VAR)
    args = parser.parse_args(argv)
    write_report(args.folder)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
