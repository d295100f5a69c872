"""``python -m bench.report``: issue 6's summary, from the stage results on disk.

Each stage writes its own result (``var/bench/verify.json``, ``drain.json``, ``e2e.json``);
this module turns whichever are present into ``var/bench/summary.json`` (the five headline
numbers, the raw numbers behind each, the goals and whether they are met, the machine's
cores and the versions), the printed table and ``var/bench/latency.png``. So after
re-running one stage alone, ``python -m bench.report`` rebuilds the summary; each
stage's result carries its own time, and the summary lists them (with the last full run's
start, wall time and failures, kept in ``var/bench/run.json``).

A number whose stage did not run, or could not measure it, is ``null`` and its goal
"not measured", never a guess. When no step of a ladder was sustainable the system's
highest sustainable rate is 0 (below the lowest step offered), and said so in the raw
numbers.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

VAR = Path(__file__).resolve().parents[1] / "var" / "bench"
# Each stage's result file, var/bench/<stage>.json.
STAGES = ("verify", "drain", "drain_postgres", "drain_1m", "drain_before", "drain_after", "e2e")
FIXED_RATE = 500.0
IDLE_RATE = 5.0
API_AND_WORKER_ROLES = ("api", "worker")


@dataclass(frozen=True)
class Goal:
    comparison: str  # ">=" or "<="
    target: float
    meaning: str

    def met(self, value: float | None) -> bool | None:
        if value is None:
            return None
        return value >= self.target if self.comparison == ">=" else value <= self.target

    def text(self) -> str:
        return f"{self.comparison} {self.target:g}"


GOALS: dict[str, Goal] = {
    "verify_vs_openssl": Goal(
        ">=", 0.9, "the project's verifier (worker path, one core) / openssl speed verify/s"
    ),
    "worker_drain_per_s": Goal(
        ">=", 5000, "commands/s one worker process drains from a 50,000-command backlog"
    ),
    "worker_drain_postgres_per_s": Goal(">=", 3000, "the same drain, the store on PostgreSQL"),
    "drain_redone": Goal("<=", 0, "events of the plain drain published more than once"),
    "e2e_vs_inline_throughput": Goal(
        ">=", 0.6, "full stack / inline peer, highest offered rate with p99 < 100 ms, no errors"
    ),
    "e2e_p99_ms_at_500rps": Goal("<=", 25, "full stack p99 latency (ms), open loop at 500/s"),
    "idle_p50_ms": Goal("<=", 5, "full stack p50 latency (ms) of a PUT at 5 requests/s"),
    "cpu_ms_per_request": Goal(
        "<=", 2.0, "CPU ms of every stack process (Kafka included) per PUT, at 200/s"
    ),
    "drain_at_1m_devices_ratio": Goal(
        ">=", 0.9, "drain rate with 1,000,000 devices stored / with an empty store"
    ),
    "max_rss_mib": Goal("<=", 200, "peak resident memory (MiB) of any API or worker process"),
}


def finite(value: Any) -> Any:
    """The value with every NaN or infinity replaced by None (JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [finite(item) for item in value]
    return value


def _verify(verify: dict[str, Any] | None) -> tuple[float | None, dict[str, Any] | None]:
    if verify is None:
        return None, None
    raw = {
        "project_verify_per_s": verify["project_verify_per_s"],
        "openssl_verify_per_s": verify["openssl_verify_per_s"],
        "openssl_sign_per_s": verify["openssl_sign_per_s"],
        "cases_per_s": verify["cases_per_s"],
        "cpu": verify["cpu"],
        "openssl_command": verify["openssl"]["command"],
    }
    return verify["ratio"], raw


def _drain(drain: dict[str, Any] | None) -> tuple[float | None, dict[str, Any] | None]:
    if drain is None:
        return None, None
    raw = {key: value for key, value in drain.items() if key != "profile"}
    return drain["drain_per_s"], raw


def _idle(e2e: dict[str, Any] | None) -> tuple[float | None, dict[str, Any] | None]:
    stack = e2e["systems"].get("stack") if e2e else None
    steps = [step for step in stack["steps"] if step["rate"] == IDLE_RATE] if stack else []
    if not steps:
        return None, None
    return steps[0]["p50_ms"], steps[0]


def _cpu(e2e: dict[str, Any] | None) -> tuple[float | None, dict[str, Any] | None]:
    stack = e2e["systems"].get("stack") if e2e else None
    cpu = stack.get("cpu") if stack else None
    if not cpu:
        return None, None
    raw = {key: value for key, value in cpu.items() if key != "step"}
    return cpu["cpu_ms_per_request"], raw


def _ratio(
    part: dict[str, Any] | None, whole: dict[str, Any] | None
) -> tuple[float | None, dict[str, Any] | None]:
    if part is None or whole is None or not whole["drain_per_s"]:
        return None, None
    raw = {
        "with_customers_per_s": part["drain_per_s"],
        "customers": part["customers"],
        "empty_store_per_s": whole["drain_per_s"],
    }
    return round(part["drain_per_s"] / whole["drain_per_s"], 4), raw


def _sustainable(system: dict[str, Any] | None) -> float | None:
    if system is None:
        return None
    best = system["max_sustainable_rps"]
    return 0.0 if best is None else float(best)


def _e2e(
    e2e: dict[str, Any] | None,
) -> tuple[float | None, dict[str, Any] | None, float | None, dict[str, Any] | None]:
    if e2e is None:
        return None, None, None, None
    systems = e2e["systems"]
    stack, inline = systems.get("stack"), systems.get("inline")
    stack_best, inline_best = _sustainable(stack), _sustainable(inline)
    ratio = round(stack_best / inline_best, 4) if stack_best is not None and inline_best else None
    throughput_raw = {
        "stack_max_sustainable_rps": stack_best,
        "inline_max_sustainable_rps": inline_best,
        "stack_ladder_exhausted": stack["ladder_exhausted"] if stack else None,
        "inline_ladder_exhausted": inline["ladder_exhausted"] if inline else None,
        "lowest_step_rps": min(e2e["rates"]) if e2e["rates"] else None,
        "step_seconds": e2e["step_seconds"],
        "min_requests": e2e.get("min_requests"),
        "refine_steps": e2e.get("refine"),
        "workers": e2e["workers"],
        "stack_steps": stack["steps"] if stack else None,
        "inline_steps": inline["steps"] if inline else None,
    }
    fixed = stack.get("fixed") if stack else None
    p99 = fixed["p99_ms"] if fixed and float(fixed["rate"]) == FIXED_RATE else None
    return ratio, throughput_raw, p99, fixed


def _role(name: str) -> str:
    """``e2e/worker-2`` -> ``worker``; ``drain/worker`` -> ``worker``; ``e2e/api`` -> ``api``;
    ``drain/worker/1`` (a process the worker started: its verifier) -> ``worker``."""
    process = name.split("/")[1] if "/" in name else name
    stem, _, number = process.rpartition("-")
    return stem if stem and number.isdigit() else process


def _rss(
    drain: dict[str, Any] | None, e2e: dict[str, Any] | None
) -> tuple[float | None, dict[str, Any] | None]:
    by_process: dict[str, float] = {}
    if drain is not None:
        for name, kib in drain["peak_rss_kib"].items():
            by_process[f"drain/{name}"] = round(kib / 1024, 1)
    if e2e is not None and "stack" in e2e["systems"]:
        for name, kib in e2e["systems"]["stack"]["peak_rss_kib"].items():
            by_process[f"e2e/{name}"] = round(kib / 1024, 1)
    if e2e is not None and "inline" in e2e["systems"]:
        # Reported, not counted: the peer is the benchmark's baseline, not the product.
        inline = e2e["systems"]["inline"]["peak_rss_kib"]
        inline_mib = {f"e2e/{name}": round(kib / 1024, 1) for name, kib in inline.items()}
    else:
        inline_mib = {}
    counted = [mib for name, mib in by_process.items() if _role(name) in API_AND_WORKER_ROLES]
    if not counted:
        return None, None
    return max(counted), {"api_and_worker_peak_mib": by_process, "not_counted_mib": inline_mib}


def build_summary(
    *,
    verify: dict[str, Any] | None,
    drain: dict[str, Any] | None,
    e2e: dict[str, Any] | None,
    machine: dict[str, Any],
    versions: dict[str, Any],
    run: dict[str, Any] | None = None,
    drain_postgres: dict[str, Any] | None = None,
    drain_customers: dict[str, Any] | None = None,
    baseline: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """summary.json: the headline numbers, then raw numbers, goals, cores, versions, and the
    baseline (the code before the batched pipeline) measured in the same run."""
    verify_ratio, verify_raw = _verify(verify)
    drain_rate, drain_raw = _drain(drain)
    postgres_rate, postgres_raw = _drain(drain_postgres)
    throughput, throughput_raw, p99, fixed_raw = _e2e(e2e)
    idle, idle_raw = _idle(e2e)
    cpu, cpu_raw = _cpu(e2e)
    customers_ratio, customers_raw = _ratio(drain_customers, drain)
    rss, rss_raw = _rss(drain, e2e)
    values: dict[str, float | None] = {
        "verify_vs_openssl": verify_ratio,
        "worker_drain_per_s": drain_rate,
        "worker_drain_postgres_per_s": postgres_rate,
        "drain_redone": float(drain["redone"]) if drain else None,
        "e2e_vs_inline_throughput": throughput,
        "e2e_p99_ms_at_500rps": p99,
        "idle_p50_ms": idle,
        "cpu_ms_per_request": cpu,
        "drain_at_1m_devices_ratio": customers_ratio,
        "max_rss_mib": rss,
    }
    summary: dict[str, Any] = dict(values)
    summary["raw"] = {
        "verify_vs_openssl": verify_raw,
        "worker_drain_per_s": drain_raw,
        "worker_drain_postgres_per_s": postgres_raw,
        "drain_redone": (
            {"events": drain["events"], "commands": drain["drained"]} if drain else None
        ),
        "e2e_vs_inline_throughput": throughput_raw,
        "e2e_p99_ms_at_500rps": fixed_raw,
        "idle_p50_ms": idle_raw,
        "cpu_ms_per_request": cpu_raw,
        "drain_at_1m_devices_ratio": customers_raw,
        "max_rss_mib": rss_raw,
    }
    summary["baseline"] = _baseline(baseline, drain)
    summary["goals"] = {
        key: {"goal": goal.text(), "met": goal.met(values[key]), "meaning": goal.meaning}
        for key, goal in GOALS.items()
    }
    summary["cores"] = machine.get("cores")
    summary["machine"] = machine
    summary["versions"] = versions
    summary["run"] = run or {}
    cleaned: dict[str, Any] = finite(summary)
    return cleaned


def _baseline(
    baseline: dict[str, Any] | None, drain: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The worker before the batched pipeline, drained in this run, beside today's."""
    if baseline is None:
        return None
    before = baseline["before"]
    after = baseline.get("after")
    return {
        "source": before.get("worker_source"),
        "commands": before["drained"],
        "drain_per_s": before["drain_per_s"],
        "redone": before["redone"],
        "cpu_ms_per_command": before["cpu_ms_per_command"],
        "stages_percent": (before.get("profile") or {}).get("stages_percent"),
        "after_drain_per_s": after["drain_per_s"] if after else None,
        "after_cpu_ms_per_command": after["cpu_ms_per_command"] if after else None,
        "after_stages_percent": ((after or {}).get("profile") or {}).get("stages_percent"),
        "drain_speed_up": (
            round(drain["drain_per_s"] / before["drain_per_s"], 2) if drain else None
        ),
    }


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
    if key == "worker_drain_per_s":
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
        return f"p99 {_number(raw['p99_ms'])} ms over {raw['requests']} requests"
    if key == "cpu_ms_per_request":
        parts = ", ".join(f"{name} {seconds:.1f}" for name, seconds in raw["cpu_seconds"].items())
        kafka = "" if raw["kafka_included"] else " (Kafka not measured)"
        return f"{raw['requests']:,} requests at {raw['rate']:g}/s; CPU s {parts}{kafka}"
    if key == "drain_at_1m_devices_ratio":
        return (
            f"{raw['with_customers_per_s']:,.0f}/s with {raw['customers']:,} devices vs"
            f" {raw['empty_store_per_s']:,.0f}/s"
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
        drain_postgres=_load(stages["drain_postgres"]),
        drain_customers=_load(stages["drain_1m"]),
        baseline={"before": before, "after": after} if before else None,
        e2e=e2e,
        machine=machine(),
        versions=versions(external_kafka=external_kafka),
        run={**(run or {}), "stage_results": {name: _stamp(p) for name, p in stages.items()}},
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
