"""``var/bench/latency.png``: p50, p99 and p99.9 latency against offered rate, both systems.

One colour per system, one line style per percentile, a logarithmic latency axis (an
overloaded step is seconds where a healthy one is milliseconds), the 100 ms p99 limit that
defines "sustainable", and the full stack's fixed-rate run as separate markers.

matplotlib comes with the ``bench`` extra (``make bench`` installs it). It is imported by
name at run time, so the type checker of a venv without it (``make lint`` installs only
``.[test]``) does not need its stubs; without it the PNG is skipped, with a message.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from bench.stats import P99_LIMIT_MS

_PERCENTILES = (("p50_ms", "p50", ":"), ("p99_ms", "p99", "-"), ("p999_ms", "p99.9", "--"))
_COLOURS = {"stack": "tab:blue", "inline": "tab:orange"}
_LABELS = {"stack": "full stack (API, Kafka, workers)", "inline": "inline peer (no Kafka)"}


def _pyplot() -> Any:
    matplotlib = importlib.import_module("matplotlib")
    matplotlib.use("Agg")  # files only, no display
    return importlib.import_module("matplotlib.pyplot")


def _points(steps: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    pairs = [(step["rate"], step[key]) for step in steps if step.get(key) is not None]
    return [rate for rate, _ in pairs], [value for _, value in pairs]


def draw_latency(e2e: dict[str, Any], path: Path) -> bool:
    """Draw the chart of an e2e result into ``path``; whether it was drawn."""
    try:
        plt = _pyplot()
    except ImportError:
        print("matplotlib is missing (pip install -e '.[bench]'): no latency.png")
        return False
    figure, axes = plt.subplots(figsize=(9, 5.5), dpi=120)
    for system, data in e2e["systems"].items():
        colour = _COLOURS.get(system, "tab:gray")
        for key, name, style in _PERCENTILES:
            rates, values = _points(data["steps"], key)
            if rates:
                axes.plot(
                    rates,
                    values,
                    linestyle=style,
                    marker="o",
                    markersize=3,
                    color=colour,
                    label=f"{_LABELS.get(system, system)} {name}",
                )
        fixed = data.get("fixed")
        if fixed:
            for (key, name, _), marker in zip(_PERCENTILES, ("1", "x", "+"), strict=True):
                if fixed.get(key) is not None:
                    axes.scatter(
                        [fixed["rate"]],
                        [fixed[key]],
                        marker=marker,
                        s=60,
                        color=colour,
                        label=f"{system}, fixed {fixed['rate']:g}/s run, {name}",
                    )
    axes.axhline(P99_LIMIT_MS, color="red", linewidth=0.8, label=f"p99 limit {P99_LIMIT_MS:g} ms")
    axes.set_yscale("log")
    # Rates span two orders of magnitude (the ladder doubles, roughly): log too, ticked at
    # the rates offered.
    offered = sorted(
        {step["rate"] for data in e2e["systems"].values() for step in data["steps"]}
        | {data["fixed"]["rate"] for data in e2e["systems"].values() if data.get("fixed")}
    )
    if offered:
        axes.set_xscale("log")
        # Labelled at the ladder's rungs (and the fixed rate) that were offered; the
        # bisection steps between them are plotted unlabelled, as they can be close.
        rungs = [rate for rate in offered if rate in set(e2e["rates"]) | {e2e.get("at_rate")}]
        axes.set_xticks(rungs or offered, [f"{rate:g}" for rate in rungs or offered])
        axes.minorticks_off()
    axes.set_xlabel("offered load (requests/s, open loop)")
    axes.set_ylabel("latency from intended send time (ms)")
    axes.set_title(f"PUT signature: latency against offered load ({e2e['step_seconds']:g} s steps)")
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(fontsize=7, loc="upper left")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return True


def draw_profile(before: dict[str, Any], after: dict[str, Any], path: Path) -> bool:
    """``var/bench/worker_profile.png``: where a draining worker's CPU time goes, before and
    after, as milliseconds of CPU per 1,000 commands per stage (py-spy samples of every
    thread, shares scaled by each run's CPU time per command). Each argument is a drain
    result with its ``profile`` and ``cpu_ms_per_command``."""
    try:
        plt = _pyplot()
    except ImportError:
        print("matplotlib is missing (pip install -e '.[bench]'): no worker_profile.png")
        return False
    runs = [("before", before), ("after", after)]
    stages = list(after["profile"]["stages_percent"])
    figure, axes = plt.subplots(figsize=(9, 5), dpi=120)
    left = [0.0, 0.0]
    colours = plt.get_cmap("tab10")
    for index, stage in enumerate(stages):
        widths = [
            run["cpu_ms_per_command"] * 1000 * run["profile"]["stages_percent"].get(stage, 0) / 100
            for _, run in runs
        ]
        axes.barh(
            [label for label, _ in runs], widths, left=left, color=colours(index), label=stage
        )
        left = [start + width for start, width in zip(left, widths, strict=True)]
    for row, total in enumerate(left):
        axes.text(total, row, f" {total:,.0f} ms", va="center")
    axes.set_xlabel("worker CPU ms per 1,000 commands drained (all threads)")
    axes.set_title("Where a draining worker's time goes (py-spy)")
    axes.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return True
