"""``python -m bench.e2e``: latency against offered load, open loop, for the full stack and
for its inline peer; the stack at a fixed rate; and the CPU time every stack process spends
per request. The method: docs/benchmarks.md."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.kafka_floor import measure_floor
from bench.ladder import SystemResult, Target, print_step, run_ladder, run_step
from bench.scrape import scrape
from bench.stacks import prepare, start_full_stack, start_inline_peer
from bench.summary import IDLE_RATE
from bench.warmup import warm_broker
from harness.cpu import kafka_pids, snapshot
from harness.kafka import local_kafka
from harness.processes import Children, run_folder, stop_on_sigterm

VAR = Path(__file__).resolve().parents[1] / "var" / "bench"
DEFAULT_RATES = (5, 10, 25, 50, 75, 100, 150, 200, 300, 400, 500, 600, 800, 1000)
SYSTEMS = ("stack", "inline")
# A step lasts long enough for this many requests: the p99 of 20 samples would be their
# maximum, and a single slow request would decide the step.
MIN_REQUESTS = 100


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
    step = run_step(target, workdir, token_file, rate, seconds)
    target.settle()
    after = snapshot(pids.values())
    used = {
        name: round(after[pid] - before[pid], 3)
        for name, pid in pids.items()
        if pid in before and pid in after
    }
    answered = step.requests - step.errors
    total = sum(used.values())
    print_step(step)
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


def scrape_all(endpoints: dict[str, str]) -> dict[str, dict[str, dict[str, Any]] | None]:
    return {name: scrape(url) for name, url in endpoints.items()}


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
    jwks, token_file, database = prepare(workdir, system)
    result = SystemResult(system)
    with Children(workdir / "logs" / system) as children:
        if system == "stack":
            if bootstrap is None:
                raise ValueError("the full stack needs Kafka")
            running = start_full_stack(
                children, bootstrap=bootstrap, database=database, jwks=jwks, workers=workers
            )
        else:
            running = start_inline_peer(children, database=database, jwks=jwks)
        url, metrics, settle = running.url, running.metrics, running.settle
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
            result.fixed = run_step(target, workdir, token_file, at_rate, at_seconds)
            print("  fixed rate:", flush=True)
            print_step(result.fixed)
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
    workers: int = 1,
    refine: int = 2,
    min_requests: int = MIN_REQUESTS,
    cpu_rate: float = 200.0,
    kafka_dir: Path | None = None,
) -> dict[str, Any]:
    results = {}
    floor = None
    if bootstrap is not None and "stack" in systems:
        floor = measure_floor(bootstrap, rate=IDLE_RATE)
        print(f"e2e: two bare Kafka hops at {IDLE_RATE:g}/s: p50 {floor['p50_ms']} ms", flush=True)
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
        "kafka_floor": floor,
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
    parser.add_argument("--workers", type=int, default=1)
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
