"""``python -m bench`` (``make bench``): every measurement in one run; see docs/benchmarks.md.

Stages, each also runnable alone (``python -m bench.<stage> --help``), each writing
``var/bench/<stage>.json``:

1. ``verify``: the verifier on one core against ``openssl speed``;
2. one Kafka broker of our own on a free port (or ``KAFKA_BOOTSTRAP_SERVERS``), shared by
   the stages below on private topics;
3. ``drain``: one worker draining 50,000 verifications, SQLite; ``drain_device``: the same
   with device signatures (bound devices' device challenges); ``drain_1m``: the binding
   drain with 1,000,000 devices already stored; ``drain_postgres``: the same on a throwaway
   durable PostgreSQL;
4. ``drain_before`` / ``drain_after``: the worker of ``--baseline-ref`` (the code before the
   batched pipeline) and today's, each draining ``--profile-commands`` under py-spy, for the
   chart of where a worker's time goes;
5. ``e2e``: the open-loop ladders of the full stack and of the inline peer, the stack at
   500 requests/s, and at 200 requests/s with every process's CPU time;
6. ``shed``: the full stack with a small ``MAX_IN_FLIGHT`` offered twice the rate the
   ladder sustained: the excess refused 503 at once, the accepted requests' p99;
7. ``report``: ``var/bench/summary.json``, the tables and the charts.

A stage that fails is reported, its numbers left ``null``, and the others still run; the
exit status is then 1. Goals that are not met are a finding, not a failure. Every process
started is stopped on exit, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import drain, e2e, report, shed, verify
from bench.databases import fresh_postgres, postgres_server
from bench.summary import finite
from bench.warmup import warm_broker
from harness.kafka import local_kafka
from harness.processes import ROOT, run_folder, stop_on_sigterm

VAR = report.VAR
# The last commit before the batched pipeline (one consumer per process, batched stores):
# the baseline every "before" figure of the run is measured on.
BASELINE_REF = "568a73d"
DRAIN_STAGES = {"drain", "drain_device", "drain_1m", "drain_postgres", "profile"}
KAFKA_STAGES = DRAIN_STAGES | {"e2e", "shed"}


def _rates(text: str) -> list[float]:
    return [float(part) for part in text.split(",") if part.strip()]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--skip",
        default="",
        help="stages to leave out: verify,drain,drain_device,drain_1m,drain_postgres,profile,"
        "e2e,shed",
    )
    parser.add_argument("--verify-seconds", type=float, default=3.0, help="per verifier case")
    parser.add_argument("--commands", type=int, default=50_000, help="drain backlog")
    parser.add_argument("--customers", type=int, default=1_000_000, help="drain_1m's devices")
    parser.add_argument("--drain-budget", type=float, default=300.0, help="seconds; 0: none")
    parser.add_argument("--profile-commands", type=int, default=20_000)
    parser.add_argument("--baseline-ref", default=BASELINE_REF, help="'' for no baseline")
    parser.add_argument("--rates", type=_rates, default=list(e2e.DEFAULT_RATES))
    parser.add_argument("--step-seconds", type=float, default=10.0)
    parser.add_argument("--at-rate", type=float, default=500.0)
    parser.add_argument("--at-seconds", type=float, default=10.0)
    parser.add_argument("--cpu-rate", type=float, default=200.0)
    parser.add_argument("--workers", type=int, default=1, help="full stack's worker processes")
    parser.add_argument("--refine", type=int, default=2, help="bisection steps after a ladder")
    parser.add_argument("--min-requests", type=int, default=e2e.MIN_REQUESTS, help="per step")
    parser.add_argument(
        "--shed-rate",
        type=float,
        default=0.0,
        help="shed's offered rate; 0: twice the stack's sustainable rate (else 1,000/s)",
    )
    parser.add_argument("--shed-in-flight", type=int, default=shed.MAX_IN_FLIGHT)
    parser.add_argument("--shed-seconds", type=float, default=shed.SECONDS)
    return parser


def _write(path: Path, result: dict[str, Any]) -> None:
    path.write_text(json.dumps(finite(result), indent=2) + "\n")


@contextmanager
def checkout(ref: str, folder: Path) -> Iterator[Path]:
    """``ref`` of this repository checked out (detached) into ``folder``, removed after."""
    subprocess.run(
        ["git", "worktree", "add", "--detach", "--force", str(folder), ref],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    try:
        yield folder
    finally:
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(folder)],
            cwd=ROOT,
            check=False,
            capture_output=True,
        )


def shed_rate(e2e_result: Path) -> float:
    """Twice the highest rate the stack sustained in this run's ladder: load it cannot take;
    ``shed.RATE`` when the ladder did not run or found none."""
    if e2e_result.exists():
        stack = json.loads(e2e_result.read_text())["systems"].get("stack") or {}
        if sustained := stack.get("max_sustainable_rps"):
            return 2.0 * float(sustained)
    return shed.RATE


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    skip = {name.strip() for name in args.skip.split(",") if name.strip()}
    stop_on_sigterm()
    started, started_at = time.monotonic(), datetime.now(UTC).isoformat(timespec="seconds")
    VAR.mkdir(parents=True, exist_ok=True)
    work = run_folder(VAR / "work")
    print(f"databases, Kafka data and logs of this run: {work}", flush=True)
    # A stage that runs (or fails) now must not leave an earlier run's result behind.
    for name in report.STAGES:
        (VAR / f"{name}.json").unlink(missing_ok=True)
    failures: dict[str, str] = {}
    timings: dict[str, float] = {}

    def stage(name: str, run: Callable[[], dict[str, Any]]) -> None:
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

    if "verify" not in skip:

        def run_verify() -> dict[str, Any]:
            result = verify.run_verify(args.verify_seconds)
            verify.print_result(result)
            return result

        stage("verify", run_verify)

    external = bool(os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
    with ExitStack() as resources:
        bootstrap: str | None = None
        if KAFKA_STAGES - skip:
            print("\n=== kafka ===", flush=True)
            try:
                bootstrap = resources.enter_context(local_kafka.running_kafka(work / "kafka"))
                print(f"kafka at {bootstrap}; warming its JIT up", flush=True)
                warm_broker(bootstrap)
            except Exception as error:
                traceback.print_exc()
                failures["kafka"] = f"{type(error).__name__}: {error}"
        if bootstrap is not None:
            broker = bootstrap
            budget = args.drain_budget or None

            def drained(name: str, **options: Any) -> Callable[[], dict[str, Any]]:
                def run() -> dict[str, Any]:
                    result = drain.run_drain(
                        broker,
                        work / name,
                        budget_s=budget,
                        kafka_dir=None if external else work / "kafka",
                        **options,
                    )
                    drain.print_result(result)
                    return result.as_dict()

                return run

            if "drain" not in skip:
                stage("drain", drained("drain", commands=args.commands))
            if "drain_device" not in skip:
                stage(
                    "drain_device", drained("drain_device", commands=args.commands, kind="device")
                )
            if "drain_1m" not in skip:
                stage(
                    "drain_1m",
                    drained("drain_1m", commands=args.commands, customers=args.customers),
                )
            if "drain_postgres" not in skip:

                def on_postgres() -> dict[str, Any]:
                    server = resources.enter_context(postgres_server())
                    url = fresh_postgres(server)
                    return drained("drain_postgres", commands=args.commands, database_url=url)()

                stage("drain_postgres", on_postgres)
            if "profile" not in skip and args.baseline_ref:
                profiled = {"commands": args.profile_commands, "profile": True}

                def before() -> dict[str, Any]:
                    source = resources.enter_context(
                        checkout(args.baseline_ref, work / "baseline-source")
                    )
                    return drained("drain_before", worker_source=source, **profiled)()

                stage("drain_before", before)
                stage("drain_after", drained("drain_after", **profiled))
            if "e2e" not in skip:

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
                        cpu_rate=args.cpu_rate,
                        kafka_dir=None if external else work / "kafka",
                    )
                    e2e.print_result(result)
                    return result

                stage("e2e", run_e2e)
            if "shed" not in skip:

                def run_shed() -> dict[str, Any]:
                    result = shed.run_shed(
                        broker,
                        work / "shed",
                        rate=args.shed_rate or shed_rate(VAR / "e2e.json"),
                        seconds=args.shed_seconds,
                        max_in_flight=args.shed_in_flight,
                        workers=args.workers,
                    )
                    shed.print_result(result)
                    return result

                stage("shed", run_shed)

    print("\n=== report ===", flush=True)
    report.write_report(
        VAR,
        run={
            "started_at": started_at,
            "wall_s": round(time.monotonic() - started, 1),
            "stage_seconds": timings,
            "failures": failures,
            "skipped": sorted(skip),
            "baseline_ref": args.baseline_ref or None,
        },
        external_kafka=external,
    )
    if failures:
        print(f"\nstages that failed: {failures}")
    print(f"\nwall time {time.monotonic() - started:.0f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
