"""Summarising py-spy's collapsed stacks, and the Prometheus histograms read beside them."""

from bench.profiling import format_profile, function_of, parse_collapsed
from bench.scrape import histogram_means

MAIN = "thread (100);main (worker/__main__.py:10);run (asyncio/runners.py:118)"
RAW = "\n".join(
    [
        f"{MAIN};handle (worker/binding.py:40);verify (worker/verify.py:90) 30",
        f"{MAIN};handle (worker/binding.py:41);execute (sqlalchemy/engine.py:5) 50",
        f"{MAIN};select (selectors.py:451) 10",
        "thread (200);_connection_worker_thread (aiosqlite/core.py:59) 10",
        "not a stack line",
    ]
)


def test_function_names_lose_their_line_numbers() -> None:
    assert function_of("handle (worker/binding.py:40)") == "handle (worker/binding.py)"
    assert function_of("<module> (<frozen runpy>)") == "<module> (<frozen runpy>)"
    assert function_of("thread (100)") == "thread (100)"


def test_inclusive_self_and_thread_shares() -> None:
    profile = parse_collapsed(RAW.splitlines(), main_thread="100")
    assert profile.samples == 100
    assert profile.by_thread == {"main": 90, "thread 200": 10}
    # Two lines of one function merge; a function counts once per stack.
    assert profile.inclusive["handle (worker/binding.py)"] == 80
    assert profile.inclusive["main (worker/__main__.py)"] == 90
    assert profile.self_samples["execute (sqlalchemy/engine.py)"] == 50
    assert "thread (100)" not in profile.inclusive

    summary = profile.as_dict(top=3, rate_hz=100, seconds=1.0)
    assert summary["threads_busy_percent"] == {"main": 90.0, "thread 200": 10.0}
    assert summary["top_cumulative"][:2] == [
        {"function": "main (worker/__main__.py)", "percent": 90.0},
        {"function": "run (asyncio/runners.py)", "percent": 90.0},
    ]
    assert summary["top_self"][0] == {"function": "execute (sqlalchemy/engine.py)", "percent": 50.0}
    text = format_profile(summary)
    assert "handle (worker/binding.py)" in text


METRICS = """\
# HELP device_binding_command_duration_seconds Time to handle one command
# TYPE device_binding_command_duration_seconds histogram
device_binding_command_duration_seconds_bucket{le="0.005",type="verify_signature"} 0.0
device_binding_command_duration_seconds_bucket{le="+Inf",type="verify_signature"} 4.0
device_binding_command_duration_seconds_count{type="verify_signature"} 4.0
device_binding_command_duration_seconds_sum{type="verify_signature"} 0.2
# HELP device_binding_event_publish_duration_seconds Time for Kafka to acknowledge
# TYPE device_binding_event_publish_duration_seconds histogram
device_binding_event_publish_duration_seconds_bucket{le="+Inf"} 0.0
device_binding_event_publish_duration_seconds_count 0.0
device_binding_event_publish_duration_seconds_sum 0.0
# HELP device_binding_commands_total Commands taken
# TYPE device_binding_commands_total counter
device_binding_commands_total{result="handled",type="verify_signature"} 4.0
"""


def test_histogram_means_by_series_skipping_empty_ones() -> None:
    assert histogram_means(METRICS) == {
        "device_binding_command_duration_seconds{type=verify_signature}": {
            "count": 4,
            "mean_ms": 50.0,
        }
    }
