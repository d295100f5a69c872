"""The per-client token buckets, on a clock the tests move."""

from __future__ import annotations

import pytest

from api.rate_limits import TokenBuckets


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_a_new_client_has_its_whole_burst_then_waits_for_the_rate(clock: Clock) -> None:
    buckets = TokenBuckets(rate=10, burst=3, clock=clock)
    assert [buckets.take("bank-1") for _ in range(3)] == [0.0, 0.0, 0.0]
    # Empty: the next token comes in 1/rate seconds; nothing is taken meanwhile.
    assert buckets.take("bank-1") == pytest.approx(0.1)
    assert buckets.take("bank-1") == pytest.approx(0.1)
    clock.now += 0.05
    assert buckets.take("bank-1") == pytest.approx(0.05)
    clock.now += 0.05
    assert buckets.take("bank-1") == 0.0
    assert buckets.take("bank-1") == pytest.approx(0.1)


def test_the_rate_holds_over_time(clock: Clock) -> None:
    buckets = TokenBuckets(rate=200, burst=400, clock=clock)
    taken = 0
    # Ten seconds of a client asking every millisecond: the burst, then the rate.
    for _ in range(10_000):
        clock.now += 0.001
        taken += buckets.take("bank-1") == 0.0
    assert taken == pytest.approx(400 + 200 * 10, abs=2)


def test_refill_stops_at_the_burst(clock: Clock) -> None:
    buckets = TokenBuckets(rate=1, burst=2, clock=clock)
    assert buckets.take("bank-1") == 0.0
    clock.now += 3600  # an hour idle: two tokens, not 3,600
    assert [buckets.take("bank-1") for _ in range(3)] == [0.0, 0.0, pytest.approx(1.0)]


def test_clients_do_not_share_a_bucket(clock: Clock) -> None:
    buckets = TokenBuckets(rate=1, burst=1, clock=clock)
    assert buckets.take("bank-1") == 0.0
    assert buckets.take("bank-1") > 0
    assert buckets.take("bank-2") == 0.0


def test_a_slow_rate_says_how_long_to_wait(clock: Clock) -> None:
    buckets = TokenBuckets(rate=0.25, burst=1, clock=clock)
    assert buckets.take("bank-1") == 0.0
    assert buckets.take("bank-1") == pytest.approx(4.0)


def test_memory_is_bounded_by_forgetting_the_least_recently_used(clock: Clock) -> None:
    buckets = TokenBuckets(rate=1, burst=1, clock=clock, max_clients=2)
    assert buckets.take("a") == buckets.take("b") == 0.0
    assert buckets.take("a") > 0  # a used last; b is the least recent
    assert buckets.take("c") == 0.0
    assert len(buckets) == 2
    # a is still remembered (and empty); b was forgotten, so it starts full.
    assert buckets.take("a") > 0
    assert buckets.take("b") == 0.0


def test_a_clock_going_back_refills_nothing(clock: Clock) -> None:
    buckets = TokenBuckets(rate=1, burst=1, clock=clock)
    assert buckets.take("bank-1") == 0.0
    clock.now -= 10
    assert buckets.take("bank-1") == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("rate", "burst", "max_clients"), [(0, 1, 1), (-1, 1, 1), (1, 0, 1), (1, 1, 0)]
)
def test_unusable_parameters_are_refused(rate: float, burst: int, max_clients: int) -> None:
    with pytest.raises(ValueError, match="rate must be positive"):
        TokenBuckets(rate, burst, max_clients=max_clients)
