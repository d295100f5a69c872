"""Where a process's time went, from ``py-spy record --format raw --threads`` output.

py-spy samples the stacks of a running process from outside (no code change, little
overhead, ``--nonblocking`` does not even pause it), so the drain can be profiled while it
is measured. Its raw format is one collapsed stack per line, root first, with the sample
count last::

    thread (1234);<module> (worker/__main__.py:79);run (asyncio/runners.py:118);... 42

Only samples of threads that were running (not idle) are recorded, so a thread's share of
``duration x rate`` is how busy it was; the event loop near 100% means the process is
CPU-bound on that thread. Functions are reported by name and file (lines merged), by
inclusive samples (the function or anything it called was on the stack: cumulative time)
and by self samples (it was the innermost frame).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# Where a sample's time went, by what its stack holds; the first stage that matches wins, so
# the order matters (a signature verified inside the store's transaction is verification).
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ECDSA verification", ("worker/verify.py",)),
    ("events and replies (pydantic, JSON, ids)", ("worker/events.py", "pydantic", "uuid.py")),
    (
        "database (SQLAlchemy, sqlite3, asyncpg)",
        ("sqlalchemy/", "sqlite", "asyncpg", "worker/store.py", "attempt"),
    ),
    ("Kafka client (aiokafka)", ("aiokafka/",)),
    ("FastStream", ("faststream/", "fast_depends/")),
    ("decisions and the rest of the worker", ("worker/",)),
    ("event loop, threads, other", ()),
)

_FRAME = re.compile(r"^(?P<name>.*) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")
_THREAD = re.compile(r"^(?:thread|process) \((?P<id>[^)]*)\)")


def function_of(frame: str) -> str:
    """``name (file:line)`` -> ``name (file)``; anything else unchanged."""
    match = _FRAME.match(frame)
    if match is None:
        return frame
    return f"{match['name']} ({match['file']})"


@dataclass
class Profile:
    samples: int = 0
    by_thread: Counter[str] = field(default_factory=Counter)
    inclusive: Counter[str] = field(default_factory=Counter)
    self_samples: Counter[str] = field(default_factory=Counter)
    by_stage: Counter[str] = field(default_factory=Counter)

    def as_dict(
        self, *, top: int = 30, rate_hz: float | None = None, seconds: float | None = None
    ) -> dict[str, Any]:
        def share(count: int) -> float:
            return round(100 * count / self.samples, 2) if self.samples else 0.0

        expected = rate_hz * seconds if rate_hz and seconds else None
        return {
            "samples": self.samples,
            "threads_busy_percent": {
                thread: round(100 * count / expected, 1) if expected else None
                for thread, count in self.by_thread.most_common()
            },
            "top_cumulative": [
                {"function": name, "percent": share(count)}
                for name, count in self.inclusive.most_common(top)
            ],
            "top_self": [
                {"function": name, "percent": share(count)}
                for name, count in self.self_samples.most_common(top)
            ],
            "stages_percent": {name: share(self.by_stage[name]) for name, _ in STAGES},
        }


def parse_collapsed(lines: Iterable[str], *, main_thread: str | None = None) -> Profile:
    """Aggregate raw py-spy lines; ``main_thread`` (the pid) is labelled ``main``."""
    profile = Profile()
    for line in lines:
        stack, _, count_text = line.rstrip("\n").rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = "process"
        thread_match = _THREAD.match(frames[0])
        if thread_match is not None:
            thread_id = thread_match["id"]
            thread = "main" if thread_id == main_thread else f"thread {thread_id}"
            frames = frames[1:]
        if not frames:
            continue
        profile.samples += count
        profile.by_thread[thread] += count
        # Once per stack however deep the recursion; in stack order, so ties rank stably.
        for name in dict.fromkeys(function_of(frame) for frame in frames):
            profile.inclusive[name] += count
        profile.self_samples[function_of(frames[-1])] += count
        profile.by_stage[stage_of(frames)] += count
    return profile


def stage_of(frames: list[str]) -> str:
    """The :data:`STAGES` entry a stack (root first) belongs to."""
    for name, markers in STAGES:
        if not markers or any(marker in frame for frame in frames for marker in markers):
            return name
    return STAGES[-1][0]


def format_profile(summary: dict[str, Any], *, top: int = 25) -> str:
    lines = [
        f"{summary['samples']} samples; busy % of each thread: {summary['threads_busy_percent']}"
    ]
    lines.append(f"{'cumulative %':>12}  function")
    for row in summary["top_cumulative"][:top]:
        lines.append(f"{row['percent']:>12.1f}  {row['function']}")
    lines.append(f"{'self %':>12}  function")
    for row in summary["top_self"][:top]:
        lines.append(f"{row['percent']:>12.1f}  {row['function']}")
    lines.append(f"{'samples %':>12}  stage")
    for name, percent in summary.get("stages_percent", {}).items():
        lines.append(f"{percent:>12.1f}  {name}")
    return "\n".join(lines)
