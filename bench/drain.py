"""``python -m bench.drain``: how fast one worker process drains a backlog of verification
commands, of binding or of device signatures (``--kind``), on SQLite or PostgreSQL, with or
without a customer base already stored, and with this checkout's worker or another's (the
baseline). The method: docs/benchmarks.md."""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from bench.backlogs import BACKLOGS
from bench.databases import fresh_postgres, postgres_server, sqlite_url
from bench.drain_watch import PROFILE_RATE_HZ, events_out, timeline, watch_drain
from bench.profiling import format_profile, parse_collapsed
from bench.scrape import scrape
from bench.seed import seed_customers
from harness import devkeys
from harness.kafka import local_kafka
from harness.otp_keys import RUN_KEYRING
from harness.ports import free_port
from harness.processes import ROOT, Children, run_folder, stop_on_sigterm
from harness.stack import StackTopics, migrate, stack_environment
from harness.topics import create_topic, produce, read_all

VAR = Path(__file__).resolve().parents[1] / "var" / "bench"


@dataclass
class DrainResult:
    # What the commands verify: "binding" or "device" signatures (bench.backlogs).
    kind: str
    commands: int
    # Commands decided (challenges with an event) within the budget: all of them unless
    # ``complete`` is false.
    drained: int
    complete: bool
    budget_s: float | None
    partitions: int
    database: str  # "sqlite" or "postgresql"
    # Bound devices the store held before the drain (the customer base).
    customers: int
    # The checkout whose worker ran, when not this one (the baseline).
    worker_source: str | None
    reply_to: bool
    seed_s: float
    produce_s: float
    # Worker spawn -> its first event (imports, schema check, topics, group join).
    startup_s: float
    # First event -> the last command's first event, by the events' own timestamps.
    drain_s: float
    drain_per_s: float
    # Spawn -> the last command's first event: what an operator starting a worker on a
    # backlog would see.
    per_s_from_spawn: float
    # The last command's first event -> every offset committed (polled every 0.2 s).
    commit_trail_s: float | None
    # Events on the topic, and distinct CloudEvents ids among them: more events than
    # commands means commands were processed again (a rebalance, a retry).
    events: int
    distinct_event_ids: int
    # Events published more than once: commands the worker decided again (a rebalance, a
    # batch redone after a group join). A plain drain should redo nothing.
    redone: int
    event_types: dict[str, int]
    peak_rss_kib: dict[str, int]
    # The worker's CPU time (all threads, and its verification process) per command
    # decided, from its first event on.
    cpu_ms_per_command: float | None
    # The broker's, over the same time (None when the broker is not this run's own).
    kafka_cpu_ms_per_command: float | None
    # The worker's own histograms (count, mean ms), read from its /metrics at the end.
    worker_histograms: dict[str, dict[str, Any]] | None = field(default=None)
    profile: dict[str, Any] | None = field(default=None)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def seals_otp_digests(source: Path) -> bool:
    """Whether the worker of checkout ``source`` stores OTP digests sealed (SPEC §9): from
    the commit that added its keyring on."""
    return (source / "worker" / "otp_keyring.py").is_file()


def run_drain(
    bootstrap: str,
    workdir: Path,
    *,
    commands: int = 50_000,
    kind: str = "binding",
    partitions: int = 6,
    database_url: str | None = None,
    customers: int = 0,
    worker_source: Path | None = None,
    reply_to: bool = True,
    profile: bool = False,
    budget_s: float | None = None,
    give_up_after: float = 1800.0,
    kafka_dir: Path | None = None,
) -> DrainResult:
    """One worker draining ``commands`` verifications, of binding or device signatures
    (``kind``, :mod:`bench.backlogs`). ``database_url``: a migrated-to-be, empty database
    (default: a fresh SQLite file in ``workdir``); ``customers``: bound devices stored
    before the drain; ``worker_source``: another checkout whose worker to run (the
    baseline), with this one's harness."""
    workdir.mkdir(parents=True, exist_ok=True)
    if database_url is None:
        database = workdir / "drain.db"
        for stale in workdir.glob("drain.db*"):
            stale.unlink()
        database_url = sqlite_url(database)
    topics = StackTopics.fresh("bench.drain")
    jwks = devkeys.ensure_keys(workdir / "keys")  # the worker needs none; the environment names one
    env = stack_environment(
        bootstrap=bootstrap, database_url=database_url, jwks=jwks, topics=topics
    )
    env["TOPIC_PARTITIONS"] = str(partitions)
    probes = free_port()
    env["WORKER_HTTP_PORT"] = str(probes)
    source = worker_source or ROOT
    if worker_source is not None:
        env["PYTHONPATH"] = str(worker_source)

    started = time.monotonic()
    migrate(env, cwd=source)
    if customers:
        print(f"drain: storing a customer base of {customers:,} bound devices ...", flush=True)
        seed_customers(database_url, customers)
    backlog = BACKLOGS[kind]
    print(f"drain: seeding {commands:,} {backlog.seeded} ...", flush=True)
    # Sealed as the worker that drains them expects: a baseline from before sealing reads
    # digests in clear.
    keyring = RUN_KEYRING if seals_otp_digests(source) else None
    tickets = backlog.seed(database_url, commands, keyring)
    seed_s = time.monotonic() - started

    print(f"drain: producing {commands:,} commands to {topics.commands} ...", flush=True)
    started = time.monotonic()
    asyncio.run(create_topic(bootstrap, topics.commands, partitions))
    reply = "bench-drain" if reply_to else None
    asyncio.run(produce(bootstrap, topics.commands, backlog.commands(tickets, reply_to=reply)))
    produce_s = time.monotonic() - started
    del tickets

    profile_out = workdir / "drain-profile.txt" if profile else None
    if profile_out is not None:
        profile_out.unlink(missing_ok=True)
    with Children(workdir / "logs") as children:
        budget = f", at most {budget_s:.0f}s" if budget_s else ""
        print(f"drain: one worker on the backlog{budget} ...", flush=True)
        spawned = time.time()
        worker = children.spawn("worker", ["-m", "worker"], env=env, role="worker", cwd=source)
        watched = asyncio.run(
            watch_drain(
                bootstrap,
                topics,
                commands,
                children,
                worker,
                profile_out=profile_out,
                budget_s=budget_s,
                give_up_after=give_up_after,
                kafka_dir=kafka_dir,
            )
        )
        histograms = scrape(f"http://127.0.0.1:{probes}/metrics")
        if watched.profiler is not None:
            try:
                watched.profiler.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                children.stop(watched.profiler)
        children.stop(worker)
        peaks = {name: kib for name, kib in children.peaks_kib.items() if name != "py-spy"}

    out = asyncio.run(events_out(bootstrap, topics.events))
    events = timeline(asyncio.run(read_all(bootstrap, topics.events, out, within=180)))
    if events.decided == 0:
        raise RuntimeError("the worker published no event")
    drain_s = max(events.last_s - events.first_s, 1e-3)
    summary: dict[str, Any] | None = None
    if profile_out is not None and profile_out.exists():
        lines = profile_out.read_text().splitlines()
        summary = parse_collapsed(lines, main_thread=str(worker.pid)).as_dict(
            rate_hz=PROFILE_RATE_HZ, seconds=watched.profiled_s
        )
    trail = watched.committed_at - events.last_s if watched.committed_at else None
    result = DrainResult(
        kind=kind,
        commands=commands,
        drained=events.decided,
        complete=watched.complete,
        budget_s=budget_s,
        partitions=partitions,
        database=make_url(database_url).get_backend_name(),
        customers=customers,
        worker_source=str(worker_source) if worker_source else None,
        reply_to=reply_to,
        seed_s=round(seed_s, 2),
        produce_s=round(produce_s, 2),
        startup_s=round(events.first_s - spawned, 2),
        drain_s=round(drain_s, 3),
        drain_per_s=round(events.decided / drain_s, 1),
        per_s_from_spawn=round(events.decided / (events.last_s - spawned), 1),
        commit_trail_s=round(trail, 2) if trail is not None else None,
        events=events.events,
        distinct_event_ids=events.distinct_ids,
        redone=events.events - events.decided,
        event_types=events.types,
        peak_rss_kib=peaks,
        cpu_ms_per_command=(
            round(1000 * watched.cpu_s / events.decided, 4) if watched.cpu_s else None
        ),
        kafka_cpu_ms_per_command=(
            round(1000 * watched.kafka_cpu_s / events.decided, 4) if watched.kafka_cpu_s else None
        ),
        worker_histograms=histograms,
        profile=summary,
    )
    if set(events.types) != {backlog.verified}:
        raise RuntimeError(f"expected only {backlog.verified} events, got {events.types}")
    if watched.complete and events.decided != commands:
        raise RuntimeError(f"all {commands} committed but {events.decided} challenges decided")
    return result


def print_result(result: DrainResult) -> None:
    partial = (
        ""
        if result.complete
        else f" (budget of {result.budget_s:.0f}s spent: {result.drained} drained; the rate is"
        " over those)"
    )
    print(
        f"\ndrain: {result.commands} {result.kind} signature commands, one worker,"
        f" {result.partitions} partitions,"
        f" {result.database}, {result.customers:,} customers stored"
        + (f", the worker of {result.worker_source}" if result.worker_source else "")
        + f"{partial}\n"
        f"  seed {result.seed_s:.1f}s, produce {result.produce_s:.1f}s,"
        f" worker start-up {result.startup_s:.1f}s\n"
        f"  first->last event {result.drain_s:.1f}s = {result.drain_per_s:,.0f} commands/s"
        f" ({result.per_s_from_spawn:,.0f}/s from spawn);"
        f" all committed {result.commit_trail_s}s after the last command's event\n"
        f"  CPU ms per command: worker {result.cpu_ms_per_command},"
        f" Kafka {result.kafka_cpu_ms_per_command}\n"
        f"  {result.events} events ({result.distinct_event_ids} distinct ids) for"
        f" {result.drained} commands decided ({result.redone} redone); peak RSS MiB"
        f" { {name: round(kib / 1024, 1) for name, kib in result.peak_rss_kib.items()} }",
        flush=True,
    )
    if result.worker_histograms:
        print("  worker histograms (count, mean ms):")
        for name, values in sorted(result.worker_histograms.items()):
            print(f"    {name}: {values['count']} x {values['mean_ms']} ms")
    if result.profile is not None:
        print("\nworker profile (py-spy) during the drain:\n" + format_profile(result.profile))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--commands", type=int, default=50_000)
    parser.add_argument(
        "--kind", choices=sorted(BACKLOGS), default="binding", help="what the commands verify"
    )
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--customers", type=int, default=0, help="bound devices stored first")
    parser.add_argument("--worker-source", type=Path, help="another checkout's worker to run")
    parser.add_argument("--no-reply-to", action="store_true", help="commands nobody waits for")
    parser.add_argument(
        "--budget-seconds",
        type=float,
        default=300.0,
        help="stop after this long from the first event and report the rate so far (0: none)",
    )
    parser.add_argument("--profile", action="store_true", help="py-spy the worker")
    parser.add_argument("--bootstrap", help="an existing Kafka (default: start one)")
    parser.add_argument(
        "--out", type=Path, help="default: var/bench/drain.json, drain_device.json for devices"
    )
    args = parser.parse_args(argv)
    stop_on_sigterm()
    work = run_folder(VAR / "work")
    with ExitStack() as stack:
        bootstrap = args.bootstrap or stack.enter_context(local_kafka.running_kafka(work / "kafka"))
        database_url = None
        if args.database == "postgres":
            database_url = fresh_postgres(stack.enter_context(postgres_server()))
        result = run_drain(
            bootstrap,
            work / "drain",
            commands=args.commands,
            kind=args.kind,
            partitions=args.partitions,
            database_url=database_url,
            customers=args.customers,
            worker_source=args.worker_source,
            reply_to=not args.no_reply_to,
            kafka_dir=None if args.bootstrap else work / "kafka",
            profile=args.profile,
            budget_s=args.budget_seconds or None,
        )
    out = args.out or VAR / ("drain.json" if args.kind == "binding" else "drain_device.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result.as_dict(), indent=2) + "\n")
    print_result(result)
    print(f"\nwritten {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
