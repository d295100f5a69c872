"""The shed stage's arithmetic: the accepted and the refused requests of an overloaded step
told apart, and the rate it offers."""

import json
from pathlib import Path

from bench.__main__ import shed_rate
from bench.shed import RATE, shed_stats


def test_accepted_and_refused_are_told_apart() -> None:
    samples = {
        "latency_ms": [10.0, 20.0, 30.0, 1.0, 2.0, 500.0, 3.0],
        "status": [204, 204, 204, 503, 503, 0, -1],
        "send_lag_ms": [0.5] * 7,
        "wall_s": 2.0,
    }
    stats = shed_stats(samples)
    assert (stats["requests"], stats["accepted"], stats["refused"]) == (7, 3, 2)
    # A timeout (0) and a failed connection (-1) are neither: reported, never counted as shed.
    assert stats["other_statuses"] == {"0": 1, "-1": 1}
    assert stats["shed_share"] == round(2 / 7, 4)
    assert stats["accepted_per_s"] == 1.5
    assert (stats["accepted_p50_ms"], stats["accepted_p99_ms"]) == (20.0, 30.0)
    assert stats["accepted_max_ms"] == 30.0
    assert (stats["refused_p50_ms"], stats["refused_p99_ms"]) == (1.0, 2.0)
    assert stats["send_lag_p99_ms"] == 0.5


def test_a_step_with_nothing_refused_has_no_refused_latency() -> None:
    stats = shed_stats({"latency_ms": [5.0], "status": [204], "send_lag_ms": [0.1], "wall_s": 1.0})
    assert stats["refused"] == 0
    assert stats["shed_share"] == 0
    assert stats["refused_p99_ms"] is None
    json.dumps(stats, allow_nan=False)


def test_the_offered_rate_is_twice_what_the_ladder_sustained(tmp_path: Path) -> None:
    result = tmp_path / "e2e.json"
    assert shed_rate(result) == RATE  # no ladder in this run
    result.write_text(json.dumps({"systems": {"stack": {"max_sustainable_rps": 450.0}}}))
    assert shed_rate(result) == 900.0
    result.write_text(json.dumps({"systems": {"stack": {"max_sustainable_rps": None}}}))
    assert shed_rate(result) == RATE
    result.write_text(json.dumps({"systems": {"inline": {"max_sustainable_rps": 900.0}}}))
    assert shed_rate(result) == RATE
