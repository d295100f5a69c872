"""What a process's own Prometheus histograms say about where its time went.

The worker times each command's handling (decide, store, publish event and reply) and each
event publish; the API times each command's publish and each reply wait. Read from
``/metrics`` at the end of a stage, their means split a request's latency between stages
without instrumenting anything: ``consumers x 1 / mean handling time`` is the most a
worker could drain if fetching and committing were free.
"""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families


def histogram_means(text: str) -> dict[str, dict[str, Any]]:
    """Every histogram series: ``name{labels}`` -> count and mean in milliseconds."""
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.type != "histogram":
            continue
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()) if k != "le")
            key = f"{family.name}{{{labels}}}" if labels else family.name
            if sample.name.endswith("_sum"):
                sums[key] = sample.value
            elif sample.name.endswith("_count"):
                counts[key] = sample.value
    return {
        key: {"count": int(count), "mean_ms": round(1000 * sums.get(key, 0.0) / count, 2)}
        for key, count in counts.items()
        if count
    }


def counter(text: str, name: str, labels: dict[str, str]) -> float:
    """The value of counter ``name`` (without ``_total``) with exactly ``labels``; 0 if the
    series is not there."""
    for family in text_string_to_metric_families(text):
        if family.name == name and family.type == "counter":
            for sample in family.samples:
                if sample.name == f"{name}_total" and sample.labels == labels:
                    return float(sample.value)
    return 0.0


def scrape(url: str) -> dict[str, dict[str, Any]] | None:
    """``histogram_means`` of ``url`` (a /metrics endpoint); None if it does not answer."""
    try:
        response = httpx.get(url, timeout=5)
    except httpx.TransportError:
        return None
    if response.status_code != 200:
        return None
    return histogram_means(response.text)
