"""The summary of a benchmark run: each headline number from its stage's result, the raw
numbers behind it, its goal and whether it is met, and the baseline beside today's."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

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
    "device_signature_drain_per_s": Goal(
        ">=", 5000, "the same drain, device signatures on bound devices' device challenges"
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
    "shed_p99_ms": Goal(
        "<=",
        100,
        "p99 latency (ms) of the requests accepted while load beyond capacity is shed with"
        " 503 (the full stack, MAX_IN_FLIGHT small)",
    ),
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
    # Beside it, the two bare Kafka hops every PUT makes, timed on the same broker in this run.
    return steps[0]["p50_ms"], {**steps[0], "kafka_floor": e2e.get("kafka_floor") if e2e else None}


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


def _shed(shed: dict[str, Any] | None) -> tuple[float | None, dict[str, Any] | None]:
    if shed is None:
        return None, None
    return shed["accepted_p99_ms"], dict(shed)


def _role(name: str) -> str:
    """``e2e/worker-2`` -> ``worker``; ``drain/worker`` -> ``worker``; ``e2e/api`` -> ``api``;
    ``drain/worker/1`` (a process the worker started: its verifier) -> ``worker``."""
    process = name.split("/")[1] if "/" in name else name
    stem, _, number = process.rpartition("-")
    return stem if stem and number.isdigit() else process


def _rss(
    drains: dict[str, dict[str, Any] | None], e2e: dict[str, Any] | None
) -> tuple[float | None, dict[str, Any] | None]:
    by_process: dict[str, float] = {}
    for stage, drain in drains.items():
        if drain is not None:
            for name, kib in drain["peak_rss_kib"].items():
                by_process[f"{stage}/{name}"] = round(kib / 1024, 1)
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
    drain_device: dict[str, Any] | None = None,
    baseline: dict[str, Any] | None = None,
    shed: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """summary.json: the headline numbers, then raw numbers, goals, cores, versions, and the
    baseline (the code before the batched pipeline) measured in the same run."""
    verify_ratio, verify_raw = _verify(verify)
    drain_rate, drain_raw = _drain(drain)
    device_rate, device_raw = _drain(drain_device)
    postgres_rate, postgres_raw = _drain(drain_postgres)
    throughput, throughput_raw, p99, fixed_raw = _e2e(e2e)
    idle, idle_raw = _idle(e2e)
    cpu, cpu_raw = _cpu(e2e)
    customers_ratio, customers_raw = _ratio(drain_customers, drain)
    rss, rss_raw = _rss({"drain": drain, "drain_device": drain_device}, e2e)
    shed_p99, shed_raw = _shed(shed)
    values: dict[str, float | None] = {
        "verify_vs_openssl": verify_ratio,
        "worker_drain_per_s": drain_rate,
        "device_signature_drain_per_s": device_rate,
        "worker_drain_postgres_per_s": postgres_rate,
        "drain_redone": float(drain["redone"]) if drain else None,
        "e2e_vs_inline_throughput": throughput,
        "e2e_p99_ms_at_500rps": p99,
        "idle_p50_ms": idle,
        "cpu_ms_per_request": cpu,
        "drain_at_1m_devices_ratio": customers_ratio,
        "max_rss_mib": rss,
        "shed_p99_ms": shed_p99,
    }
    summary: dict[str, Any] = dict(values)
    summary["raw"] = {
        "verify_vs_openssl": verify_raw,
        "worker_drain_per_s": drain_raw,
        "device_signature_drain_per_s": device_raw,
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
        "shed_p99_ms": shed_raw,
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
