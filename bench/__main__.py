"""``python -m deploy.bench`` (``make bench``): issue 6's measurements in one run.

In order, each stage also runnable alone (``python -m deploy.bench.<stage> --help``):

1. ``verify``: the project's verifier on one core against ``openssl speed`` (about 20 s);
2. one Kafka broker of our own on a free port under ``var/bench/work/`` (or
   ``KAFKA_BOOTSTRAP_SERVERS``), shared by the next two stages on private topics;
3. ``drain``: one worker draining 50,000 verification commands (at most
   ``--drain-budget`` seconds of draining, 300 by default);
4. ``e2e``: the open-loop ladders of the full stack and of the inline peer, then the full
   stack at 500 requests/s;
5. ``report``: ``var/bench/summary.json``, the table and ``var/bench/latency.png``.

A stage that fails is reported, its numbers left ``null``, and the others still run; the
exit status is then 1. Goals that are not met are a finding, not a failure. Every process
started is stopped on exit, Ctrl-C or SIGTERM. Budget: the stages' defaults keep a run on
a two-core machine well inside 20 minutes, whatever the system's speed; the flags below
shorten them further for a quick look.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import traceback
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from deploy.bench import drain, e2e, report, verify
from deploy.bench.processes import run_folder, stop_on_sigterm
from deploy.kafka import local_kafka

VAR = report.VAR


def _rates(text: str) -> list[float]:
    return [float(part) for part in text.split(",") if part.strip()]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--skip", default="", help="stages to leave out: verify,drain,e2e")
    parser.add_argument("--verify-seconds", type=float, default=3.0, help="per verifier case")
    parser.add_argument("--commands", type=int, default=50_000, help="drain backlog")
    parser.add_argument("--drain-budget", type=float, default=300.0, help="seconds; 0: none")
    parser.add_argument("--profile", action="store_true", help="py-spy the draining worker")
    parser.add_argument("--rates", type=_rates, default=list(e2e.DEFAULT_RATES))
    parser.add_argument("--step-seconds", type=float, default=10.0)
    parser.add_argument("--at-rate", type=float, default=500.0)
    parser.add_argument("--at-seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2, help="full stack's worker processes")
    parser.add_argument("--refine", type=int, default=2, help="bisection steps after a ladder")
    parser.add_argument("--min-requests", type=int, default=e2e.MIN_REQUESTS, help="per step")
    return parser


def _write(path: Path, result: dict[str, Any]) -> None:
    path.write_text(json.dumps(report.finite(result), indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    skip = {name.strip() for name in args.skip.split(",") if name.strip()}
    stop_on_sigterm()
    started, started_at = time.monotonic(), datetime.now(UTC).isoformat(timespec="seconds")
    VAR.mkdir(parents=True, exist_ok=True)
    work = run_folder(VAR / "work")
    print(f"databases, Kafka data and logs of this run: {work}", flush=True)
    # A stage that runs (or fails) now must not leave an earlier run's result behind.
    for name in {"verify", "drain", "e2e"} - skip:
        (VAR / f"{name}.json").unlink(missing_ok=True)
    failures: dict[str, str] = {}
    timings: dict[str, float] = {}

    def stage(name: str, run: Callable[[], dict[str, Any]]) -> None:
        if name in skip:
            return
        print(f"\n=== {name} ===", flush=True)
        began = time.monotonic()
        try:
            result = run()
        except Exception as error:
            traceback.print_exc()
            failures[name] = f"{type(error).__name__}: {error}"
            return
        finally:
            timings[name] = round(time.monotonic() - began, 1)
        _write(VAR / f"{name}.json", result)

    def run_verify() -> dict[str, Any]:
        result = verify.run_verify(args.verify_seconds)
        verify.print_result(result)
        return result

    stage("verify", run_verify)

    external = bool(os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
    with ExitStack() as kafka:
        bootstrap: str | None = None
        if {"drain", "e2e"} - skip:
            print("\n=== kafka ===", flush=True)
            try:
                bootstrap = kafka.enter_context(local_kafka.running_kafka(work / "kafka"))
                print(f"kafka at {bootstrap}", flush=True)
            except Exception as error:
                traceback.print_exc()
                for name in sorted({"drain", "e2e"} - skip):
                    failures[name] = f"no Kafka: {type(error).__name__}: {error}"
        if bootstrap is not None:
            broker = bootstrap

            def run_drain() -> dict[str, Any]:
                result = drain.run_drain(
                    broker,
                    work / "drain",
                    commands=args.commands,
                    budget_s=args.drain_budget or None,
                    profile=args.profile,
                )
                drain.print_result(result)
                return result.as_dict()

            def run_e2e() -> dict[str, Any]:
                result = e2e.run_e2e(
                    broker,
                    work / "e2e",
                    rates=args.rates,
                    step_seconds=args.step_seconds,
                    at_rate=args.at_rate,
                    at_seconds=args.at_seconds,
                    workers=args.workers,
                    refine=args.refine,
                    min_requests=args.min_requests,
                )
                e2e.print_result(result)
                return result

            stage("drain", run_drain)
            stage("e2e", run_e2e)

    print("\n=== report ===", flush=True)
    report.write_report(
        VAR,
        run={
            "started_at": started_at,
            "wall_s": round(time.monotonic() - started, 1),
            "stage_seconds": timings,
            "failures": failures,
            "skipped": sorted(skip),
        },
        external_kafka=external,
    )
    if failures:
        print(f"\nstages that failed: {failures}")
    print(f"\nwall time {time.monotonic() - started:.0f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
