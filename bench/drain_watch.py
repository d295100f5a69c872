"""Watching one worker drain from outside: committed offsets until the backlog is done, the
first event, the CPU time of the worker and of the broker, py-spy on the worker, and what
the events topic says afterwards."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.cpu import cpu_seconds, kafka_pids, tree_cpu_seconds
from harness.processes import Child, Children
from harness.stack import StackTopics
from harness.topics import OffsetWatch

PROFILE_RATE_HZ = 100


def start_profiler(children: Children, worker: Child, out: Path) -> Child | None:
    # The venv's own first (make bench does not activate it), then the PATH's.
    beside = Path(sys.executable).parent / "py-spy"
    spy = str(beside) if beside.exists() else shutil.which("py-spy")
    if spy is None:
        print("py-spy not found (pip install -e '.[bench]'); no profile", flush=True)
        return None
    return children.spawn(
        "py-spy",
        [
            *(spy, "record", "--pid", str(worker.pid), "--format", "raw", "--threads"),
            # The verification process beside the worker's event loop too.
            "--subprocesses",
            *("--nonblocking", "--rate", str(PROFILE_RATE_HZ), "--output", str(out)),
        ],
        python=False,
        role="profiler",
    )


@dataclass
class Watched:
    complete: bool
    # Wall clock (epoch seconds) when every command's offset was seen committed.
    committed_at: float | None
    profiler: Child | None
    profiled_s: float
    # CPU time of the worker process from its first event to the last commit seen.
    cpu_s: float | None
    # The same for the Kafka broker (None when it is not this run's own).
    kafka_cpu_s: float | None


async def watch_drain(
    bootstrap: str,
    topics: StackTopics,
    commands: int,
    children: Children,
    worker: Child,
    *,
    profile_out: Path | None,
    budget_s: float | None,
    give_up_after: float,
    kafka_dir: Path | None,
) -> Watched:
    """Poll until the group has committed every command (SPEC §6: only once its outcome is
    stored and its event published), or the budget, counted from the first event, is
    spent. The events topic's end says when the first event is out (the profiler starts
    then)."""
    watch = OffsetWatch(bootstrap)
    await watch.start()
    profiler: Child | None = None
    first_seen: float | None = None
    cpu_at_first: float | None = None
    kafka_at_first: float | None = None
    committed = 0
    try:
        deadline = time.monotonic() + give_up_after
        while committed < commands:
            children.check_alive()
            now = time.monotonic()
            if now > deadline:
                raise TimeoutError(f"{committed}/{commands} committed after {give_up_after:.0f}s")
            if first_seen is not None and budget_s is not None and now - first_seen > budget_s:
                break
            if first_seen is None and await watch.end(topics.events) > 0:
                first_seen = time.monotonic()
                cpu_at_first = tree_cpu_seconds(worker.pid)
                kafka_at_first = kafka_cpu(kafka_dir)
                if profile_out is not None:
                    profiler = start_profiler(children, worker, profile_out)
            committed = await watch.committed(topics.group, topics.commands)
            await asyncio.sleep(0.2)
        done = time.monotonic()
        cpu_at_end = tree_cpu_seconds(worker.pid)
        kafka_at_end = kafka_cpu(kafka_dir)
        if profiler is not None:
            # SIGINT: py-spy writes what it has and exits.
            profiler.process.send_signal(signal.SIGINT)
        profiled = done - (first_seen or done)
        complete = committed >= commands
        cpu = (
            cpu_at_end - cpu_at_first
            if cpu_at_end is not None and cpu_at_first is not None
            else None
        )
        kafka = (
            kafka_at_end - kafka_at_first
            if kafka_at_end is not None and kafka_at_first is not None
            else None
        )
        return Watched(complete, time.time() if complete else None, profiler, profiled, cpu, kafka)
    finally:
        await watch.stop()


def kafka_cpu(kafka_dir: Path | None) -> float | None:
    if kafka_dir is None:
        return None
    seconds = [cpu_seconds(pid) for pid in kafka_pids(kafka_dir)]
    known = [value for value in seconds if value is not None]
    return sum(known) if known else None


async def events_out(bootstrap: str, topic: str) -> int:
    watch = OffsetWatch(bootstrap)
    await watch.start()
    try:
        return await watch.end(topic)
    finally:
        await watch.stop()


@dataclass(frozen=True)
class Timeline:
    """What the events topic says about a drain (:func:`timeline`)."""

    events: int
    distinct_ids: int
    # Challenges with an event: one per command, so the commands decided.
    decided: int
    # The first event of the first and of the last challenge decided (epoch seconds).
    first_s: float
    last_s: float
    types: dict[str, int]


def timeline(records: Sequence[tuple[int, bytes]]) -> Timeline:
    """Count events, distinct CloudEvents ids and distinct challenges, and when each
    challenge first got its event (``(timestamp ms, CloudEvent JSON)`` records).

    A command redelivered after a rebalance republishes its event (SPEC §5 allows it, with
    the same id), so the topic may hold more events than commands: the rate counts each
    challenge once, by its first event, and the copies are reported beside it.
    """
    first_by_subject: dict[str, int] = {}
    ids: set[str] = set()
    types: Counter[str] = Counter()
    for stamp, value in records:
        event = json.loads(value)
        ids.add(str(event.get("id")))
        types[str(event.get("type", "?"))] += 1
        subject = str(event.get("subject"))
        first_by_subject[subject] = min(stamp, first_by_subject.get(subject, stamp))
    firsts = sorted(first_by_subject.values()) or [0]
    return Timeline(
        events=len(records),
        distinct_ids=len(ids),
        decided=len(first_by_subject),
        first_s=firsts[0] / 1000,
        last_s=firsts[-1] / 1000,
        types=dict(types),
    )
