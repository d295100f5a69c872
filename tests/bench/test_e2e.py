"""Where the e2e ladder looks next once a step has failed: bisection, within reason."""

from bench.ladder import refinement
from bench.stats import StepStats, step_stats


def _step(rate: float, *, ok: bool) -> StepStats:
    return step_stats(
        system="stack",
        rate=rate,
        duration_s=10,
        latencies_ms=[20.0 if ok else 500.0] * 10,
        statuses=[204] * 10,
        send_lags_ms=[1.0] * 10,
        wall_s=10,
    )


def test_it_bisects_between_the_last_pass_and_the_first_failure() -> None:
    steps = [_step(10, ok=True), _step(25, ok=True), _step(50, ok=False)]
    assert refinement(steps) == 38  # round(37.5)
    steps.append(_step(38, ok=False))
    assert refinement(steps) == 32  # round(31.5): between 25 and 38
    steps.append(_step(32, ok=True))
    assert refinement(steps) == 35


def test_nothing_to_refine_without_a_failure_or_once_close_enough() -> None:
    assert refinement([_step(10, ok=True), _step(25, ok=True)]) is None
    assert refinement([_step(100, ok=True), _step(105, ok=False)]) is None  # within 10%
    assert refinement([_step(1, ok=True), _step(2, ok=False)]) is None


def test_a_ladder_failing_at_once_is_refined_from_zero() -> None:
    assert refinement([_step(5, ok=False)]) == 2  # round(2.5), to even
    assert refinement([_step(5, ok=False), _step(2, ok=False)]) == 1
