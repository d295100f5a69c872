"""The benchmark's summary: the headline numbers, their raw numbers, goals, cores, versions,
and the baseline measured in the same run."""

import json
import math
from typing import Any

from bench.report import format_ladders, format_table
from bench.summary import GOALS, build_summary, finite

MACHINE = {"cores": 2, "cores_usable": 2, "platform": "Linux", "processor": "x86_64"}
VERSIONS = {"python": "3.11.7", "cryptography": "50.0.2", "kafka": "4.1.1"}
HEADLINES = (
    "verify_vs_openssl",
    "worker_drain_per_s",
    "device_signature_drain_per_s",
    "worker_drain_postgres_per_s",
    "drain_redone",
    "e2e_vs_inline_throughput",
    "e2e_p99_ms_at_500rps",
    "idle_p50_ms",
    "cpu_ms_per_request",
    "drain_at_1m_devices_ratio",
    "max_rss_mib",
    "shed_p99_ms",
)


def _step(system: str, rate: float, p99: float, *, sustainable: bool) -> dict[str, Any]:
    return {
        "system": system,
        "rate": rate,
        "duration_s": 10.0,
        "requests": int(rate * 10),
        "ok": int(rate * 10),
        "errors": 0,
        "p50_ms": p99 / 2,
        "p90_ms": p99 * 0.8,
        "p99_ms": p99,
        "p999_ms": p99 * 1.5,
        "max_ms": p99 * 2,
        "achieved_rps": rate,
        "send_lag_p99_ms": 1.0,
        "error_statuses": {},
        "sustainable": sustainable,
    }


VERIFY = {
    "cpu": 1,
    "seconds_per_case": 3.0,
    "project_verify_per_s": 5000.0,
    "openssl_verify_per_s": 10000.0,
    "openssl_sign_per_s": 30000.0,
    "ratio": 0.5,
    "cases_per_s": {"verify_digest, SEC1 key bytes (worker path)": 5000.0},
    "openssl": {"command": "openssl speed -seconds 3 ecdsap256", "version": "OpenSSL 3.0"},
}
DRAIN = {
    "commands": 50000,
    "drained": 12000,
    "complete": False,
    "budget_s": 300.0,
    "drain_s": 300.0,
    "drain_per_s": 40.0,
    "events": 12500,
    "distinct_event_ids": 12000,
    "redone": 500,
    "customers": 0,
    "cpu_ms_per_command": 0.5,
    "peak_rss_kib": {"worker": 102400},
    "profile": {"samples": 1},
}
DRAIN_POSTGRES = {**DRAIN, "drain_per_s": 30.0, "redone": 0}
DRAIN_DEVICE = {
    **DRAIN,
    "kind": "device",
    "drained": 50000,
    "complete": True,
    "drain_s": 10.0,
    "drain_per_s": 5000.0,
    "events": 50000,
    "redone": 0,
    "peak_rss_kib": {"worker": 120 * 1024},
}
DRAIN_1M = {**DRAIN, "drain_per_s": 36.0, "customers": 1_000_000}
CPU_RUN = {
    "rate": 200.0,
    "requests": 2000,
    "errors": 0,
    "cpu_seconds": {"api": 4.0, "worker-1": 2.0, "worker-2": 2.0, "kafka-1": 4.0},
    "kafka_included": True,
    "cpu_ms_per_request": 6.0,
    "step": {},
}
E2E = {
    "rates": [5, 10, 25],
    "step_seconds": 10.0,
    "at_rate": 500.0,
    "at_seconds": 10.0,
    "workers": 2,
    "kafka_floor": {"rate": 5.0, "round_trips": 100, "p50_ms": 4.2, "p90_ms": 5.5},
    "systems": {
        "stack": {
            "max_sustainable_rps": 10.0,
            "ladder_exhausted": False,
            "steps": [
                _step("stack", 5, 50, sustainable=True),
                _step("stack", 10, 80, sustainable=True),
                _step("stack", 25, 300, sustainable=False),
            ],
            "fixed": {**_step("stack", 500, 5000, sustainable=False), "errors": 4000},
            "peak_rss_kib": {"api": 90 * 1024, "worker-1": 110 * 1024, "worker-2": 100 * 1024},
            "cpu": CPU_RUN,
        },
        "inline": {
            "max_sustainable_rps": 25.0,
            "ladder_exhausted": True,
            "steps": [
                _step("inline", 5, 20, sustainable=True),
                _step("inline", 10, 30, sustainable=True),
                _step("inline", 25, 60, sustainable=True),
            ],
            "fixed": None,
            "peak_rss_kib": {"inline-peer": 300 * 1024},
        },
    },
}


SHED = {
    "rate": 1100.0,
    "seconds": 10.0,
    "max_in_flight": 32,
    "workers": 1,
    "requests": 11000,
    "accepted": 5500,
    "refused": 5500,
    "other_statuses": {},
    "shed_share": 0.5,
    "accepted_per_s": 550.0,
    "accepted_p50_ms": 20.0,
    "accepted_p99_ms": 60.0,
    "accepted_max_ms": 90.0,
    "refused_p50_ms": 1.0,
    "refused_p99_ms": 4.5,
    "send_lag_p99_ms": 2.0,
    "wall_s": 10.0,
    "refused_by_bound": 5500,
    "verified_in_store": 5500,
    "catch_up_s": 0.2,
}


def _summary(**stages: Any) -> dict[str, Any]:
    values = {
        "verify": VERIFY,
        "drain": DRAIN,
        "drain_device": DRAIN_DEVICE,
        "drain_postgres": DRAIN_POSTGRES,
        "drain_customers": DRAIN_1M,
        "e2e": E2E,
        "shed": SHED,
    } | stages
    return build_summary(**values, machine=MACHINE, versions=VERSIONS, run={"wall_s": 1.0})


def test_the_summary_has_every_headline_number_cores_and_versions() -> None:
    summary = _summary()
    assert [key for key in summary if key in HEADLINES] == list(HEADLINES)
    assert summary["verify_vs_openssl"] == 0.5
    assert summary["worker_drain_per_s"] == 40.0
    assert summary["device_signature_drain_per_s"] == 5000.0
    assert summary["worker_drain_postgres_per_s"] == 30.0
    assert summary["drain_redone"] == 500
    assert summary["e2e_vs_inline_throughput"] == 0.4  # 10 / 25
    assert summary["e2e_p99_ms_at_500rps"] == 5000
    assert summary["idle_p50_ms"] == 25  # the stack's step at 5/s
    assert summary["cpu_ms_per_request"] == 6.0
    assert summary["drain_at_1m_devices_ratio"] == 0.9  # 36 / 40
    assert summary["max_rss_mib"] == 120.0  # the inline peer's 300 MiB is not the product
    assert summary["shed_p99_ms"] == 60.0  # the accepted requests', not the refused ones'
    assert summary["cores"] == 2
    assert summary["versions"] == VERSIONS
    json.dumps(summary, allow_nan=False)  # valid JSON, nothing left as NaN


def test_the_raw_numbers_behind_each_ratio_are_kept() -> None:
    raw = _summary()["raw"]
    assert raw["verify_vs_openssl"]["project_verify_per_s"] == 5000
    assert raw["verify_vs_openssl"]["openssl_verify_per_s"] == 10000
    assert raw["e2e_vs_inline_throughput"]["stack_max_sustainable_rps"] == 10
    assert raw["e2e_vs_inline_throughput"]["inline_max_sustainable_rps"] == 25
    assert raw["e2e_vs_inline_throughput"]["inline_ladder_exhausted"] is True
    assert raw["worker_drain_per_s"]["complete"] is False
    assert "profile" not in raw["worker_drain_per_s"]  # in drain.json, not in the summary
    assert raw["e2e_p99_ms_at_500rps"]["errors"] == 4000
    assert raw["max_rss_mib"]["not_counted_mib"] == {"e2e/inline-peer": 300.0}
    assert raw["max_rss_mib"]["api_and_worker_peak_mib"]["drain/worker"] == 100.0
    assert raw["max_rss_mib"]["api_and_worker_peak_mib"]["drain_device/worker"] == 120.0
    assert raw["device_signature_drain_per_s"]["kind"] == "device"
    assert raw["idle_p50_ms"]["kafka_floor"]["p50_ms"] == 4.2  # the floor beside the idle p50
    assert raw["shed_p99_ms"]["refused_p99_ms"] == 4.5
    assert raw["shed_p99_ms"]["shed_share"] == 0.5


def test_goals_are_judged_in_their_direction() -> None:
    goals = _summary()["goals"]
    assert set(goals) == set(GOALS) == set(HEADLINES)
    assert goals["verify_vs_openssl"] == {
        "goal": ">= 0.9",
        "met": False,
        "meaning": GOALS["verify_vs_openssl"].meaning,
    }
    assert goals["max_rss_mib"]["met"] is True
    # The device signature drain is held to the binding drain's goal.
    assert goals["device_signature_drain_per_s"]["goal"] == goals["worker_drain_per_s"]["goal"]
    assert goals["device_signature_drain_per_s"]["met"] is True
    assert goals["worker_drain_per_s"]["met"] is False
    assert goals["e2e_p99_ms_at_500rps"]["met"] is False
    assert GOALS["e2e_p99_ms_at_500rps"].met(25.0) is True
    assert GOALS["worker_drain_per_s"].met(5000.0) is True
    assert GOALS["worker_drain_per_s"].met(None) is None


def test_stages_that_did_not_run_are_null_not_guessed() -> None:
    stages = ("verify", "drain", "drain_device", "drain_postgres", "drain_customers", "e2e", "shed")
    summary = _summary(**dict.fromkeys(stages))
    assert all(summary[key] is None for key in HEADLINES)
    assert all(goal["met"] is None for goal in summary["goals"].values())
    assert "not measured" in format_table(summary)


def test_a_stack_that_sustains_no_step_scores_zero() -> None:
    e2e = json.loads(json.dumps(E2E))
    e2e["systems"]["stack"]["max_sustainable_rps"] = None
    summary = _summary(e2e=e2e)
    assert summary["e2e_vs_inline_throughput"] == 0
    assert "below the lowest step, 5/s" in format_table(summary)


def test_the_fixed_run_fills_its_key_only_at_500_per_second() -> None:
    e2e = json.loads(json.dumps(E2E))
    e2e["systems"]["stack"]["fixed"]["rate"] = 300.0
    summary = _summary(e2e=e2e)
    assert summary["e2e_p99_ms_at_500rps"] is None
    assert summary["raw"]["e2e_p99_ms_at_500rps"]["rate"] == 300


def test_nan_becomes_null() -> None:
    assert finite({"a": [1.0, math.nan], "b": math.inf, "c": "x"}) == {
        "a": [1.0, None],
        "b": None,
        "c": "x",
    }


def test_the_tables_name_every_metric_and_step() -> None:
    summary = _summary()
    table = format_table(summary)
    for key in HEADLINES:
        assert key in table
    assert "5,000 / 10,000 verify/s" in table
    assert "12,000 of 50,000 in 300.0 s, budget 300 s spent; 500 events published again" in table
    assert "36/s with 1,000,000 devices vs 40/s" in table
    # The device signature drain's row comes right after the binding drain's.
    rows = [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ")]
    assert rows.index("device_signature_drain_per_s") == rows.index("worker_drain_per_s") + 1
    assert "| 50,000 of 50,000 in 10.0 s " in table
    assert "kafka-1 4.0" in table
    assert "Kafka's two bare hops p50 4.2 ms" in table
    assert "1100/s offered, MAX_IN_FLIGHT 32: 50% refused 503 (p99 4.5 ms)" in table
    assert "5,500 accepted, 5,500 verified in the store" in table
    ladders = format_ladders(E2E)
    assert ladders.count("| stack ") == 3
    assert "| stack* |" in ladders
    assert ladders.count("| inline ") == 3


def test_the_baseline_is_set_beside_todays_drain() -> None:
    before = {**DRAIN, "drain_per_s": 10.0, "worker_source": "/src", "profile": PROFILE}
    after = {**DRAIN, "drain_per_s": 40.0, "profile": PROFILE}
    baseline = _summary(baseline={"before": before, "after": after})["baseline"]
    assert baseline["drain_speed_up"] == 4.0
    assert baseline["source"] == "/src"
    assert baseline["stages_percent"] == PROFILE["stages_percent"]
    assert _summary()["baseline"] is None


PROFILE = {"samples": 10, "stages_percent": {"ECDSA verification": 40.0, "other": 60.0}}
