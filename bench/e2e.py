"""``python -m bench.e2e``: latency against offered load, open loop, for the full
stack and for its inline peer (issue 6's ``e2e_vs_inline_throughput`` and
``e2e_p99_ms_at_500rps``).

For each system (``--systems stack,inline``), started fresh on free ports
(:mod:`harness.stack`):

1. a warm-up of 2 s at 10 requests/s, not recorded (connections, caches, Kafka metadata);
2. the ladder: ``--rates`` in order, ``--step-seconds`` (10) each, every step a separate
   load-generator process (:mod:`bench.loadgen`) offering a fixed arrival rate of
   ``PUT /v1/mfa/challenges/signatures/{id}`` with correct signatures (a step at a low
   rate lasts long enough for ``--min-requests``, 100, so that its p99 is not simply its
   slowest request). The ladder stops
   after the first step whose p99 is 100 ms or more, or that had any error (a status other
   than 204, a timeout); then ``--refine`` (2) bisection steps between the last step that
   passed and the first that failed, since the ladder's rungs are coarse. The highest step
   passed below the lowest failure is the system's highest sustainable rate. If every step
   passes, that rate is only a lower bound (``ladder_exhausted``);
3. the full stack only: ``--at-rate`` (500) requests/s for ``--at-seconds`` (10), whatever
   the ladder found, for ``e2e_p99_ms_at_500rps``.

Before each step its challenges are seeded (:mod:`bench.seed`: every request
verifies a pending challenge with the correct signature of its OTP, the realistic and most
expensive path), and the stack's workers must have committed every earlier command: an
overloaded step's backlog would otherwise be charged to the next one.

Everything runs on this machine: Kafka, the API, the workers (two, as ``make run``) and the
generator share its cores, and the rates say what this machine sustains, not a cluster.
At the end the API's and workers' own histograms (publish, reply wait, handling) are read
from their ``/metrics``, to split the latency between the stages.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.databases import sqlite_url
from bench.scrape import scrape
from bench.seed import BENCH_CLIENT_ID, seed, write_tickets
from bench.stats import StepStats, highest_sustainable, ladder_exhausted, requests_in
from bench.stats import step_stats as summarise
from bench.warmup import warm_broker
from dev import devkeys
from harness.cpu import kafka_pids, snapshot
from harness.kafka import local_kafka
from harness.ports import free_port
from harness.processes import Children, run_folder, stop_on_sigterm
from harness.stack import (
    StackTopics,
    auth_environment,
    migrate,
    stack_environment,
    start_stack,
    wait_until_ready,
)
from harness.topics import OffsetWatch

VAR = Path(__file__).resolve().parents[1] / "var" / "bench"
DEFAULT_RATES = (5, 10, 25, 50, 75, 100, 150, 200, 300, 400, 500, 600, 800, 1000)
SYSTEMS = ("stack", "inline")
WARMUP_RATE, WARMUP_SECONDS = 10.0, 2.0
CATCH_UP_SECONDS = 180.0
# A step lasts long enough for this many requests: the p99 of 20 samples would be their
# maximum, and a single slow request would decide the step.
MIN_REQUESTS = 100


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


def _run_step(
    target: Target, workdir: Path, token_file: Path, rate: float, seconds: float
) -> StepStats:
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
    samples = json.loads(out.read_text())
    tickets_file.unlink()
    return summarise(
        system=target.system,
        rate=rate,
        duration_s=seconds,
        latencies_ms=samples["latency_ms"],
        statuses=samples["status"],
        send_lags_ms=samples["send_lag_ms"],
        wall_s=samples["wall_s"],
    )


def _cpu_run(
    target: Target,
    workdir: Path,
    token_file: Path,
    rate: float,
    seconds: float,
    kafka_dir: Path | None,
) -> dict[str, Any]:
    """A fixed-rate step with every stack process's CPU time taken before and after: the
    API, the workers and the Kafka broker (found under ``kafka_dir``), the load generator
    not. The workers must also have committed the step's commands, so their part is whole."""
    pids = {child.name: child.pid for child in target.children.running}
    for pid in kafka_pids(kafka_dir) if kafka_dir else []:
        pids[f"kafka-{pid}"] = pid
    before = snapshot(pids.values())
    step = _run_step(target, workdir, token_file, rate, seconds)
    target.settle()
    after = snapshot(pids.values())
    used = {
        name: round(after[pid] - before[pid], 3)
        for name, pid in pids.items()
        if pid in before and pid in after
    }
    answered = step.requests - step.errors
    total = sum(used.values())
    _print_step(step)
    print(f"  CPU over {answered} requests: {used} s", flush=True)
    return {
        "rate": rate,
        "requests": answered,
        "errors": step.errors,
        "cpu_seconds": used,
        "kafka_included": any(name.startswith("kafka-") for name in used),
        "cpu_ms_per_request": round(1000 * total / answered, 3) if answered else None,
        "step": step.as_dict(),
    }


def start_inline_peer(children: Children, *, database: Path, jwks: Path) -> str:
    """The inline peer on a free port, migrating its own store; its base URL."""
    port = free_port()
    children.spawn(
        "inline-peer",
        ["-m", "bench.inline_peer"],
        env={
            "DATABASE_URL": sqlite_url(database),
            "AUTO_MIGRATE": "true",
            **auth_environment(jwks),
            "API_HOST": "127.0.0.1",
            "API_PORT": str(port),
            "PYTHONUNBUFFERED": "1",
        },
        role="inline-peer",
    )
    url = f"http://127.0.0.1:{port}"
    asyncio.run(wait_until_ready(f"{url}/healthz", children=children))
    return url


def scrape_all(endpoints: dict[str, str]) -> dict[str, dict[str, dict[str, Any]] | None]:
    return {name: scrape(url) for name, url in endpoints.items()}


def _print_step(step: StepStats) -> None:
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
        step = _run_step(target, workdir, token_file, rate, seconds)
        _print_step(step)
        result.steps.append(step)
        return step

    _run_step(target, workdir, token_file, WARMUP_RATE, WARMUP_SECONDS)
    for rate in rates:
        if not step_at(rate).sustainable:
            break
    for _ in range(refine):
        between = refinement(result.steps)
        if between is None:
            break
        print(f"  {target.system}: refining at {between:g}/s", flush=True)
        step_at(between)


def _stack_settle(bootstrap: str, topics: StackTopics) -> Callable[[], float]:
    def settle() -> float:
        async def caught_up() -> float:
            watch = OffsetWatch(bootstrap)
            await watch.start()
            started = time.monotonic()
            try:
                if not await watch.wait_caught_up(
                    topics.group, topics.commands, within=CATCH_UP_SECONDS
                ):
                    print(f"  (workers still behind after {CATCH_UP_SECONDS:.0f}s)", flush=True)
            finally:
                await watch.stop()
            return time.monotonic() - started

        return asyncio.run(caught_up())

    return settle


def run_system(
    system: str,
    *,
    bootstrap: str | None,
    workdir: Path,
    rates: Sequence[float],
    step_seconds: float,
    settle_seconds: float,
    at_rate: float,
    at_seconds: float,
    workers: int,
    refine: int,
    min_requests: int,
    cpu_rate: float = 0.0,
    kafka_dir: Path | None = None,
) -> SystemResult:
    workdir.mkdir(parents=True, exist_ok=True)
    keys = workdir / "keys"
    jwks = devkeys.ensure_keys(keys)
    token_file = workdir / "token.txt"
    token_file.write_text(devkeys.mint_token(keys, client_id=BENCH_CLIENT_ID, ttl=4 * 3600))
    database = workdir / f"{system}.db"
    for stale in workdir.glob(f"{system}.db*"):
        stale.unlink()
    result = SystemResult(system)
    with Children(workdir / "logs" / system) as children:
        metrics: dict[str, str] = {}
        if system == "stack":
            if bootstrap is None:
                raise ValueError("the full stack needs Kafka")
            topics = StackTopics.fresh("bench.e2e")
            env = stack_environment(
                bootstrap=bootstrap, database_url=sqlite_url(database), jwks=jwks, topics=topics
            )
            migrate(env)
            ports = [free_port() for _ in range(workers)]
            [url] = asyncio.run(
                start_stack(
                    children,
                    worker_env=env,
                    api_env={**env, **topics.api_env()},
                    workers=workers,
                    apis=1,
                    worker_ports=ports,
                )
            )
            metrics = {"api": f"{url}/metrics"}
            metrics |= {
                f"worker-{n + 1}": f"http://127.0.0.1:{port}/metrics"
                for n, port in enumerate(ports)
            }
            settle = _stack_settle(bootstrap, topics)
        else:
            url = start_inline_peer(children, database=database, jwks=jwks)
            metrics = {"inline-peer": f"{url}/metrics"}

            def settle() -> float:
                return 0.0

        print(f"e2e: {system} up at {url}", flush=True)
        target = Target(system, url, database, children, settle)
        run_ladder(
            target,
            workdir,
            token_file,
            rates=rates,
            step_seconds=step_seconds,
            settle_seconds=settle_seconds,
            refine=refine,
            min_requests=min_requests,
            result=result,
        )
        result.histograms["after ladder"] = scrape_all(metrics)
        if system == "stack" and at_rate > 0:
            result.catch_up_s[f"before fixed {at_rate:g}"] = round(settle(), 2)
            time.sleep(settle_seconds)
            result.fixed = _run_step(target, workdir, token_file, at_rate, at_seconds)
            print("  fixed rate:", flush=True)
            _print_step(result.fixed)
            result.histograms[f"after fixed {at_rate:g}/s"] = scrape_all(metrics)
        if system == "stack" and cpu_rate > 0:
            result.catch_up_s[f"before cpu {cpu_rate:g}"] = round(settle(), 2)
            time.sleep(settle_seconds)
            result.cpu = _cpu_run(target, workdir, token_file, cpu_rate, at_seconds, kafka_dir)
        children.stop_all()
        result.peak_rss_kib = {
            name: kib for name, kib in children.peaks_kib.items() if not name.startswith("loadgen")
        }
        result.peak_rss_by_role_kib = {
            role: kib for role, kib in children.peak_by_role().items() if role != "loadgen"
        }
    return result


def run_e2e(
    bootstrap: str | None,
    workdir: Path,
    *,
    systems: Sequence[str] = SYSTEMS,
    rates: Sequence[float] = DEFAULT_RATES,
    step_seconds: float = 10.0,
    settle_seconds: float = 2.0,
    at_rate: float = 500.0,
    at_seconds: float = 10.0,
    workers: int = 2,
    refine: int = 2,
    min_requests: int = MIN_REQUESTS,
    cpu_rate: float = 200.0,
    kafka_dir: Path | None = None,
) -> dict[str, Any]:
    results = {}
    for system in systems:
        print(f"e2e: {system}: ladder {', '.join(f'{r:g}' for r in rates)}/s", flush=True)
        results[system] = run_system(
            system,
            bootstrap=bootstrap,
            workdir=workdir,
            rates=rates,
            step_seconds=step_seconds,
            settle_seconds=settle_seconds,
            at_rate=at_rate,
            at_seconds=at_seconds,
            workers=workers,
            refine=refine,
            min_requests=min_requests,
            cpu_rate=cpu_rate,
            kafka_dir=kafka_dir,
        ).as_dict()
    return {
        "rates": list(rates),
        "step_seconds": step_seconds,
        "at_rate": at_rate,
        "at_seconds": at_seconds,
        "workers": workers,
        "refine": refine,
        "min_requests": min_requests,
        "cpu_rate": cpu_rate,
        "systems": results,
    }


def print_result(result: dict[str, Any]) -> None:
    print("\ne2e: highest sustainable rate (p99 < 100 ms, no errors)")
    for system, data in result["systems"].items():
        bound = " (every step passed: a lower bound)" if data["ladder_exhausted"] else ""
        print(f"  {system:<6} {data['max_sustainable_rps']} requests/s{bound}")
        fixed = data.get("fixed")
        if fixed:
            print(
                f"  {system:<6} at {fixed['rate']:g}/s: p99 {fixed['p99_ms']:.1f} ms,"
                f" {fixed['errors']} errors of {fixed['requests']}"
            )


def _rates(text: str) -> list[float]:
    return [float(part) for part in text.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rates", type=_rates, default=list(DEFAULT_RATES))
    parser.add_argument("--step-seconds", type=float, default=10.0)
    parser.add_argument("--settle-seconds", type=float, default=2.0)
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="stack,inline")
    parser.add_argument("--at-rate", type=float, default=500.0, help="0: skip the fixed run")
    parser.add_argument("--at-seconds", type=float, default=10.0)
    parser.add_argument("--cpu-rate", type=float, default=200.0, help="0: skip the CPU run")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--refine", type=int, default=2, help="bisection steps after the ladder")
    parser.add_argument(
        "--min-requests", type=int, default=MIN_REQUESTS, help="per step, stretching slow ones"
    )
    parser.add_argument("--bootstrap", help="an existing Kafka (default: start one)")
    parser.add_argument("--out", type=Path, default=VAR / "e2e.json")
    args = parser.parse_args(argv)
    systems = [name.strip() for name in args.systems.split(",") if name.strip()]
    if unknown := set(systems) - set(SYSTEMS):
        parser.error(f"unknown systems: {sorted(unknown)}")
    stop_on_sigterm()
    work = run_folder(VAR / "work")
    with ExitStack() as stack:
        bootstrap = args.bootstrap
        kafka_dir = None
        if bootstrap is None and "stack" in systems:
            bootstrap = stack.enter_context(local_kafka.running_kafka(work / "kafka"))
            kafka_dir = work / "kafka"
            warm_broker(bootstrap)
        result = run_e2e(
            bootstrap,
            work / "e2e",
            systems=systems,
            rates=args.rates,
            step_seconds=args.step_seconds,
            settle_seconds=args.settle_seconds,
            at_rate=args.at_rate,
            at_seconds=args.at_seconds,
            workers=args.workers,
            refine=args.refine,
            min_requests=args.min_requests,
            cpu_rate=args.cpu_rate,
            kafka_dir=kafka_dir,
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print_result(result)
    print(f"\nwritten {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
