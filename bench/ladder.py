"""The ladder of offered rates a system is loaded with, a step at a time: each step seeded,
loaded by its own generator process, and summarised; then bisection between the last step
that held and the first that did not."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.databases import sqlite_url
from bench.seed import seed, write_tickets
from bench.stats import StepStats, highest_sustainable, ladder_exhausted, requests_in
from bench.stats import step_stats as summarise
from harness.processes import Children

WARMUP_RATE, WARMUP_SECONDS = 10.0, 2.0


@dataclass
class SystemResult:
    system: str
    steps: list[StepStats] = field(default_factory=list)
    fixed: StepStats | None = None
    peak_rss_kib: dict[str, int] = field(default_factory=dict)
    peak_rss_by_role_kib: dict[str, int] = field(default_factory=dict)
    # The processes' own histograms (cumulative), after the ladder and after the fixed run.
    histograms: dict[str, dict[str, dict[str, dict[str, Any]] | None]] = field(default_factory=dict)
    # Seconds the stack's workers needed to catch up after a step, by offered rate.
    catch_up_s: dict[str, float] = field(default_factory=dict)
    # The fixed-rate CPU run: CPU seconds of each process (Kafka included) over its requests.
    cpu: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "system": self.system,
            "max_sustainable_rps": highest_sustainable(self.steps),
            "ladder_exhausted": ladder_exhausted(self.steps),
            "steps": [step.as_dict() for step in sorted(self.steps, key=lambda s: s.rate)],
            "fixed": self.fixed.as_dict() if self.fixed else None,
            "peak_rss_kib": self.peak_rss_kib,
            "peak_rss_by_role_kib": self.peak_rss_by_role_kib,
            "histograms": self.histograms,
            "catch_up_s": self.catch_up_s,
            "cpu": self.cpu,
        }


@dataclass
class Target:
    """One running system: where to send, and how to prepare and settle a step."""

    system: str
    url: str
    database: Path
    children: Children
    # Blocks until the system has finished the work of earlier steps; seconds it took.
    settle: Callable[[], float]


def generate(
    target: Target, workdir: Path, token_file: Path, rate: float, seconds: float
) -> dict[str, Any]:
    """Seed a step's challenges and offer ``rate`` requests/s of them for ``seconds`` from a
    load generator of its own; every request's sample (bench/loadgen.py's JSON)."""
    count = requests_in(rate, seconds)
    tickets = seed(sqlite_url(target.database), count)
    label = f"{target.system}-{rate:g}"
    tickets_file = workdir / "tickets" / f"{label}.jsonl"
    write_tickets(tickets_file, tickets)
    out = workdir / "steps" / f"{label}.json"
    generator = target.children.spawn(
        f"loadgen-{label}",
        [
            "-m",
            "bench.loadgen",
            *("--url", target.url, "--tickets", str(tickets_file)),
            *("--token-file", str(token_file), "--rate", f"{rate:g}"),
            *("--duration", f"{seconds:g}", "--system", target.system, "--out", str(out)),
        ],
        role="loadgen",
    )
    # The generator's own deadline: every request answered or timed out (30 s each).
    generator.process.wait(timeout=seconds + 120)
    target.children.stop(generator)
    if generator.process.returncode != 0 or not out.exists():
        raise RuntimeError(f"load generator failed ({generator.log_path}):\n{generator.log_tail()}")
    samples: dict[str, Any] = json.loads(out.read_text())
    tickets_file.unlink()
    return samples


def run_step(
    target: Target, workdir: Path, token_file: Path, rate: float, seconds: float
) -> StepStats:
    samples = generate(target, workdir, token_file, rate, seconds)
    return summarise(
        system=target.system,
        rate=rate,
        duration_s=seconds,
        latencies_ms=samples["latency_ms"],
        statuses=samples["status"],
        send_lags_ms=samples["send_lag_ms"],
        wall_s=samples["wall_s"],
    )


def print_step(step: StepStats) -> None:
    verdict = "ok" if step.sustainable else "NOT sustainable"
    errors = f" {step.error_statuses}" if step.errors else ""
    print(
        f"  {step.system:<6} {step.rate:>6g}/s: p50 {step.p50_ms:8.1f}  p99 {step.p99_ms:8.1f}"
        f"  p99.9 {step.p999_ms:8.1f}  max {step.max_ms:8.1f} ms, {step.errors} errors{errors},"
        f" achieved {step.achieved_rps:6.1f}/s, send lag p99 {step.send_lag_p99_ms:.1f} ms"
        f" -> {verdict}",
        flush=True,
    )


def refinement(steps: Sequence[StepStats]) -> float | None:
    """The next rate to try between the highest sustainable step and the lowest one above
    it that failed (bisection); None when they are within 10% (or 1/s) of each other."""
    failed = [step.rate for step in steps if not step.sustainable]
    if not failed:
        return None
    low = highest_sustainable(steps) or 0.0
    high = min(rate for rate in failed if rate > low)
    middle = round((low + high) / 2)
    if high - low <= max(1.0, 0.1 * high) or middle in (low, high):
        return None
    return float(middle)


def run_ladder(
    target: Target,
    workdir: Path,
    token_file: Path,
    *,
    rates: Sequence[float],
    step_seconds: float,
    settle_seconds: float,
    refine: int,
    min_requests: int,
    result: SystemResult,
) -> None:
    """The ladder up to its first unsustainable step, then ``refine`` bisection steps
    between the last step that passed and that one."""

    def step_at(rate: float) -> StepStats:
        result.catch_up_s[f"before {rate:g}"] = round(target.settle(), 2)
        time.sleep(settle_seconds)
        seconds = max(step_seconds, min_requests / rate)
        step = run_step(target, workdir, token_file, rate, seconds)
        print_step(step)
        result.steps.append(step)
        return step

    run_step(target, workdir, token_file, WARMUP_RATE, WARMUP_SECONDS)
    for rate in rates:
        if not step_at(rate).sustainable:
            break
    for _ in range(refine):
        between = refinement(result.steps)
        if between is None:
            break
        print(f"  {target.system}: refining at {between:g}/s", flush=True)
        step_at(between)
