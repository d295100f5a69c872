"""The Kafka floor beside the idle p50 is a real round trip through a real broker."""

import pytest

from bench.kafka_floor import measure_floor

pytestmark = pytest.mark.kafka


def test_every_ping_comes_back_and_is_timed(kafka_bootstrap: str) -> None:
    floor = measure_floor(kafka_bootstrap, rate=50.0, count=20)
    assert floor["round_trips"] == 20
    # Two acks=all hops cannot take no time, and the 90th percentile is not below the median.
    assert 0 < floor["p50_ms"] <= floor["p90_ms"]
