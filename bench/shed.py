"""``python -m bench.shed``: the full stack offered more than it can take, with a small bound on
the API's requests in flight (``MAX_IN_FLIGHT``): the excess is answered 503 at once, and
the requests accepted keep their latency (``shed_p99_ms``, the p99 of those accepted).

One API replica and ``--workers`` workers on a fresh SQLite store, the client's rate out of
the way; after the ladders' warm-up and 3 s of the same overload (not recorded), ``--rate``
requests/s for ``--seconds``, open loop, of ``PUT /v1/mfa/challenges/signatures/{id}`` with
correct signatures. Then, once the workers
have committed everything: how many were accepted (204) and how many refused (503), the
latency of each kind, how many refusals the API counted as its bound's
(``device_binding_limited_total{limit="in_flight"}``), and how many challenges the store
holds verified, which must be the number accepted: nothing accepted is lost, nothing refused
was published. The method: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from bench.ladder import WARMUP_RATE, WARMUP_SECONDS, Target, generate, run_step
from bench.scrape import counter
from bench.stacks import prepare, start_full_stack
from bench.stats import percentile
from bench.warmup import warm_broker
from harness.kafka import local_kafka
from harness.processes import Children, run_folder, stop_on_sigterm

VAR = Path(__file__).resolve().parents[1] / "var" / "bench"
RATE = 1000.0
SECONDS = 10.0
MAX_IN_FLIGHT = 32
ACCEPTED, REFUSED = 204, 503
OVERLOAD_WARMUP_SECONDS = 3.0
SETTLE_SECONDS = 2.0  # as between the ladders' steps


def _ms(values: list[float], fraction: float) -> float | None:
    value = percentile(values, fraction) if values else None
    return None if value is None else round(value, 3)


def shed_stats(samples: dict[str, Any]) -> dict[str, Any]:
    """What one overloaded step's samples say: the accepted and the refused, their latency
    percentiles (ms from the intended send time), and every other answer by status."""
    accepted: list[float] = []
    refused: list[float] = []
    other: dict[str, int] = {}
    for latency, status in zip(samples["latency_ms"], samples["status"], strict=True):
        if status == ACCEPTED:
            accepted.append(latency)
        elif status == REFUSED:
            refused.append(latency)
        else:
            other[str(status)] = other.get(str(status), 0) + 1
    requests = len(samples["status"])
    wall = samples["wall_s"]
    return {
        "requests": requests,
        "accepted": len(accepted),
        "refused": len(refused),
        "other_statuses": other,
        "shed_share": round(len(refused) / requests, 4) if requests else None,
        "accepted_per_s": round(len(accepted) / wall, 1) if wall > 0 else None,
        "accepted_p50_ms": _ms(accepted, 0.50),
        "accepted_p99_ms": _ms(accepted, 0.99),
        "accepted_max_ms": round(max(accepted), 3) if accepted else None,
        "refused_p50_ms": _ms(refused, 0.50),
        "refused_p99_ms": _ms(refused, 0.99),
        "send_lag_p99_ms": _ms(samples["send_lag_ms"], 0.99),
        "wall_s": round(wall, 3),
    }


def _refused_by_bound(metrics_url: str) -> float:
    text = httpx.get(metrics_url, timeout=5).text
    return counter(text, "device_binding_limited", {"limit": "in_flight"})


def _verified(database: Path) -> int:
    with sqlite3.connect(database) as connection:
        (count,) = connection.execute(
            "SELECT count(*) FROM challenges WHERE status = 'verified'"
        ).fetchone()
    return int(count)


def run_shed(
    bootstrap: str,
    workdir: Path,
    *,
    rate: float = RATE,
    seconds: float = SECONDS,
    max_in_flight: int = MAX_IN_FLIGHT,
    workers: int = 1,
) -> dict[str, Any]:
    jwks, token_file, database = prepare(workdir, "shed")
    with Children(workdir / "logs" / "shed") as children:
        running = start_full_stack(
            children,
            bootstrap=bootstrap,
            database=database,
            jwks=jwks,
            workers=workers,
            api_env={"MAX_IN_FLIGHT": str(max_in_flight)},
        )
        print(f"shed: stack up at {running.url}, MAX_IN_FLIGHT={max_in_flight}", flush=True)
        target = Target("shed", running.url, database, children, running.settle)
        run_step(target, workdir, token_file, WARMUP_RATE, WARMUP_SECONDS)
        # A first overload, not recorded: the worker starts its verifier process on its
        # first large batch (seconds of imports), which is no steady state to measure.
        generate(target, workdir, token_file, rate, OVERLOAD_WARMUP_SECONDS)
        target.settle()
        time.sleep(SETTLE_SECONDS)
        before = (_refused_by_bound(running.metrics["api"]), _verified(database))
        samples = generate(target, workdir, token_file, rate, seconds)
        caught_up_s = target.settle()
        after = (_refused_by_bound(running.metrics["api"]), _verified(database))
        children.stop_all()
    return {
        "rate": rate,
        "seconds": seconds,
        "max_in_flight": max_in_flight,
        "workers": workers,
        **shed_stats(samples),
        "refused_by_bound": int(after[0] - before[0]),
        "verified_in_store": after[1] - before[1],
        "catch_up_s": round(caught_up_s, 2),
    }


def print_result(result: dict[str, Any]) -> None:
    def ms(key: str) -> str:
        return "-" if result[key] is None else f"{result[key]:.1f}"

    print(
        f"\nshed: {result['rate']:g}/s offered for {result['seconds']:g} s,"
        f" MAX_IN_FLIGHT={result['max_in_flight']}: {result['requests']} requests,"
        f" {result['accepted']} accepted ({result['accepted_per_s']}/s), {result['refused']}"
        f" refused 503 (share {result['shed_share']}), other {result['other_statuses'] or 0}\n"
        f"  accepted: p50 {ms('accepted_p50_ms')}, p99 {ms('accepted_p99_ms')}"
        f" (shed_p99_ms), max {ms('accepted_max_ms')} ms\n"
        f"  refused:  p50 {ms('refused_p50_ms')}, p99 {ms('refused_p99_ms')} ms;"
        f" {result['refused_by_bound']} counted by the API's bound\n"
        f"  verified in the store: {result['verified_in_store']} (accepted:"
        f" {result['accepted']}); generator send lag p99 {ms('send_lag_p99_ms')} ms",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=RATE, help="offered requests/s")
    parser.add_argument("--seconds", type=float, default=SECONDS)
    parser.add_argument("--max-in-flight", type=int, default=MAX_IN_FLIGHT)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--bootstrap", help="an existing Kafka (default: start one)")
    parser.add_argument("--out", type=Path, default=VAR / "shed.json")
    args = parser.parse_args(argv)
    stop_on_sigterm()
    work = run_folder(VAR / "work")
    began = time.monotonic()
    with ExitStack() as stack:
        bootstrap = args.bootstrap
        if bootstrap is None:
            bootstrap = stack.enter_context(local_kafka.running_kafka(work / "kafka"))
            warm_broker(bootstrap)
        result = run_shed(
            bootstrap,
            work / "shed",
            rate=args.rate,
            seconds=args.seconds,
            max_in_flight=args.max_in_flight,
            workers=args.workers,
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print_result(result)
    print(f"\nwritten {args.out} ({time.monotonic() - began:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
