"""The arithmetic of an open-loop load test: when each request is due, and what a step of
the ladder says about the system.

Open loop: request ``i`` of a step at ``rate`` per second is due at ``i / rate`` seconds
after the step begins, whatever happened to the requests before it. Its latency counts
from that intended time, not from when the generator managed to send it, so a stall of
the system under test (or of the generator) shows as latency instead of silently lowering
the offered rate (coordinated omission).

Percentiles are nearest-rank on the sorted samples: the p99 of 250 samples is the 248th,
an observed value, never an interpolation between two.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

# What "sustainable" means for a step: p99 under this, and no error at all.
P99_LIMIT_MS = 100.0


def schedule(rate: float, duration: float) -> list[float]:
    """Intended send offsets (seconds from the step's start) of a fixed arrival rate."""
    if rate <= 0 or duration <= 0:
        raise ValueError("rate and duration must be positive")
    count = round(rate * duration)
    return [index / rate for index in range(count)]


def requests_in(rate: float, duration: float) -> int:
    """How many requests a step sends: the length of its :func:`schedule`."""
    return round(rate * duration)


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in (0, 1]) of ``values``; NaN when empty."""
    if not 0 < fraction <= 1:
        raise ValueError("fraction must be in (0, 1]")
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = math.ceil(fraction * len(ordered))
    return ordered[max(rank, 1) - 1]


@dataclass(frozen=True)
class StepStats:
    """One step of a ladder: offered rate, latency percentiles, errors, generator health."""

    system: str
    rate: float
    duration_s: float
    requests: int
    ok: int
    errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    # Requests completed per second of the step's wall time (first intended send to last
    # answer); below ``rate`` when the system fell behind.
    achieved_rps: float
    # How late the generator sent, against the schedule: large values mean the generator
    # (or the machine) could not keep up, and the latencies above include that delay.
    send_lag_p99_ms: float
    # Answers other than the expected status, by status (0: timeout, -1: connection error).
    error_statuses: dict[str, int]

    @property
    def sustainable(self) -> bool:
        return self.errors == 0 and self.p99_ms < P99_LIMIT_MS

    def as_dict(self) -> dict[str, Any]:
        """Milliseconds and rates to the microsecond: more digits would only be noise."""
        rounded = {
            key: round(value, 3) if isinstance(value, float) and math.isfinite(value) else value
            for key, value in asdict(self).items()
        }
        return {**rounded, "sustainable": self.sustainable}


def step_stats(
    *,
    system: str,
    rate: float,
    duration_s: float,
    latencies_ms: Sequence[float],
    statuses: Sequence[int],
    send_lags_ms: Sequence[float],
    wall_s: float,
    expected_status: int = 204,
) -> StepStats:
    """Summarise one step from its per-request samples (all requests, errors included)."""
    if len(latencies_ms) != len(statuses):
        raise ValueError("one latency and one status per request")
    errors: dict[str, int] = {}
    for status in statuses:
        if status != expected_status:
            errors[str(status)] = errors.get(str(status), 0) + 1
    failed = sum(errors.values())
    return StepStats(
        system=system,
        rate=rate,
        duration_s=duration_s,
        requests=len(statuses),
        ok=len(statuses) - failed,
        errors=failed,
        p50_ms=percentile(latencies_ms, 0.50),
        p90_ms=percentile(latencies_ms, 0.90),
        p99_ms=percentile(latencies_ms, 0.99),
        p999_ms=percentile(latencies_ms, 0.999),
        max_ms=max(latencies_ms, default=math.nan),
        achieved_rps=len(statuses) / wall_s if wall_s > 0 else math.nan,
        send_lag_p99_ms=percentile(send_lags_ms, 0.99),
        error_statuses=errors,
    )


def highest_sustainable(steps: Sequence[StepStats]) -> float | None:
    """The highest offered rate below the first unsustainable step; None if none passed.

    Only the steps before the first failure count: a step that passes after one that failed
    (noise, or a backlog that happened to clear) does not raise the answer.
    """
    best: float | None = None
    for step in sorted(steps, key=lambda step: step.rate):
        if not step.sustainable:
            break
        best = step.rate
    return best


def ladder_exhausted(steps: Sequence[StepStats]) -> bool:
    """Whether every step passed: the answer is then only a lower bound."""
    return bool(steps) and all(step.sustainable for step in steps)
