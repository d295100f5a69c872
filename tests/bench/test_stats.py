"""The benchmark's open-loop arithmetic: the schedule, percentiles, and what a ladder says."""

import itertools
import math

import pytest

from bench.stats import (
    StepStats,
    highest_sustainable,
    ladder_exhausted,
    percentile,
    schedule,
    step_stats,
)


def test_the_schedule_is_a_fixed_rate_from_zero() -> None:
    offsets = schedule(100, 2)
    assert len(offsets) == 200
    assert offsets[0] == 0
    assert offsets[1] == pytest.approx(0.01)
    assert offsets[-1] == pytest.approx(1.99)
    gaps = {round(b - a, 9) for a, b in itertools.pairwise(offsets)}
    assert gaps == {0.01}


def test_the_schedule_rounds_fractional_counts() -> None:
    assert len(schedule(2.5, 3)) == 8  # 7.5 requests, rounded half to even
    assert len(schedule(25, 0.2)) == 5


@pytest.mark.parametrize(("rate", "duration"), [(0, 1), (10, 0), (-1, 5)])
def test_the_schedule_refuses_nonsense(rate: float, duration: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        schedule(rate, duration)


def test_percentiles_are_nearest_rank_observed_values() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100, shuffled below
    shuffled = values[50:] + values[:50]
    assert percentile(shuffled, 0.5) == 50
    assert percentile(shuffled, 0.99) == 99
    assert percentile(shuffled, 0.999) == 100
    assert percentile(shuffled, 1.0) == 100
    assert percentile([7.0], 0.99) == 7
    # Of 250 samples the p99 is the 248th: two slow requests do not move it, three do.
    samples = [1.0] * 247 + [500.0] * 3
    assert percentile(samples, 0.99) == 500
    assert percentile([1.0] * 248 + [500.0] * 2, 0.99) == 1


def test_a_percentile_of_nothing_is_nan_and_the_fraction_is_checked() -> None:
    assert math.isnan(percentile([], 0.5))
    with pytest.raises(ValueError, match="fraction"):
        percentile([1.0], 0)
    with pytest.raises(ValueError, match="fraction"):
        percentile([1.0], 1.5)


def _step(rate: float, p99: float, errors: int = 0) -> StepStats:
    statuses = [204] * (100 - errors) + [503] * errors
    return step_stats(
        system="s",
        rate=rate,
        duration_s=1,
        latencies_ms=[p99] * 100,
        statuses=statuses,
        send_lags_ms=[0.5] * 100,
        wall_s=1.0,
    )


def test_a_step_counts_every_other_status_as_an_error() -> None:
    stats = step_stats(
        system="stack",
        rate=4,
        duration_s=1,
        latencies_ms=[10.0, 20.0, 30.0, 5000.0],
        statuses=[204, 204, 503, 0],
        send_lags_ms=[0.1, 0.2, 0.3, 0.4],
        wall_s=2.0,
    )
    assert (stats.requests, stats.ok, stats.errors) == (4, 2, 2)
    assert stats.error_statuses == {"503": 1, "0": 1}
    assert stats.p50_ms == 20
    assert stats.p99_ms == 5000
    assert stats.max_ms == 5000
    assert stats.achieved_rps == 2
    assert not stats.sustainable
    assert stats.as_dict()["sustainable"] is False


def test_a_step_needs_one_status_per_latency() -> None:
    with pytest.raises(ValueError, match="one latency"):
        step_stats(
            system="s",
            rate=1,
            duration_s=1,
            latencies_ms=[1.0],
            statuses=[],
            send_lags_ms=[],
            wall_s=1,
        )


def test_sustainable_means_p99_under_100_ms_and_no_error() -> None:
    assert _step(10, 99.9).sustainable
    assert not _step(10, 100.0).sustainable
    assert not _step(10, 5.0, errors=1).sustainable


def test_the_highest_sustainable_rate_stops_at_the_first_failure() -> None:
    steps = [_step(10, 20), _step(25, 30), _step(50, 150), _step(100, 40)]
    assert highest_sustainable(steps) == 25  # 100 passing after 50 failed does not count
    assert highest_sustainable(list(reversed(steps))) == 25  # order of the list is irrelevant
    assert highest_sustainable([_step(10, 500)]) is None
    assert highest_sustainable([]) is None
    assert not ladder_exhausted(steps)
    assert ladder_exhausted(steps[:2])
    assert not ladder_exhausted([])
