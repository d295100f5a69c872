"""CPU time of processes, from ``/proc``: what a run of requests cost every process of a system,
the broker's JVM included."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path

_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time of process ``pid`` (all its threads); None if it is gone."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        # The command name (field 2) may hold spaces: count the fields after its ")".
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS_PER_SECOND
    return None


def descendants(pid: int) -> list[int]:
    """The processes started by ``pid``, and by them, and so on (a worker's verifier)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            parent = int(stat[stat.rindex(")") + 2 :].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found, pending = [], list(children.get(pid, []))
    while pending:
        child = pending.pop()
        found.append(child)
        pending.extend(children.get(child, []))
    return found


def tree_cpu_seconds(pid: int) -> float | None:
    """CPU time of ``pid`` and of every process it started that is still running."""
    own = cpu_seconds(pid)
    if own is None:
        return None
    return own + sum(cpu_seconds(child) or 0.0 for child in descendants(pid))


def snapshot(pids: Iterable[int]) -> dict[int, float]:
    """CPU seconds of each process and its descendants."""
    return {pid: seconds for pid in pids if (seconds := tree_cpu_seconds(pid)) is not None}


def kafka_pids(under: Path) -> list[int]:
    """Kafka brokers whose command line names a file under ``under`` (the run's broker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if "kafka.Kafka" in command and str(under) in command:
                found.append(int(entry.name))
    return found
