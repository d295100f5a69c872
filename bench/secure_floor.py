"""``python -m bench.secure_floor``: what TLS and SCRAM-SHA-512 cost on the path of a request.

A PUT crosses Kafka twice (the command, the reply), each an ``acks=all`` hop. This times the
bare two-hop ping-pong of :mod:`bench.kafka_floor` on a plaintext broker and on a SASL_SSL
broker with the authorizer on (both started here, one after the other, same machine, same
run), at an idle rate and under load, and prints the ratio: the price of the secure plane
per request, before anything of ours runs. Connections are opened (TLS handshake, SCRAM
exchange) before the timing starts, as a running process's are.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from bench.kafka_floor import measure_floor
from harness.kafka.broker_config import Security
from harness.kafka.local_kafka import LocalKafka
from harness.processes import ROOT

RATES = (5.0, 200.0)
OUT = ROOT / "var" / "bench" / "secure_floor.json"


def _floors(security: Security, rates: tuple[float, ...], count: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix=f"bench-floor-{security}-") as folder:
        broker = LocalKafka(Path(folder), security=security)
        broker.start()
        try:
            # The admin principal: it may create the ping-pong's topics (None: plaintext).
            connection = broker.connection()
            return [
                measure_floor(
                    broker.bootstrap_servers, rate=rate, count=count, connection=connection
                )
                for rate in rates
            ]
        finally:
            broker.stop()


def _table(plain: list[dict[str, Any]], secure: list[dict[str, Any]]) -> str:
    lines = [
        "| rate/s | plaintext p50 ms | SASL_SSL p50 ms | ratio | plaintext p90 ms "
        "| SASL_SSL p90 ms | ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for before, after in zip(plain, secure, strict=True):
        lines.append(
            f"| {before['rate']:g} | {before['p50_ms']:.2f} | {after['p50_ms']:.2f} "
            f"| {after['p50_ms'] / before['p50_ms']:.2f} | {before['p90_ms']:.2f} "
            f"| {after['p90_ms']:.2f} | {after['p90_ms'] / before['p90_ms']:.2f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--round-trips", type=int, default=400, help="per rate and broker")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    plain = _floors("plaintext", RATES, args.round_trips)
    secure = _floors("sasl_ssl", RATES, args.round_trips)
    print(_table(plain, secure), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"plaintext": plain, "sasl_ssl": secure}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
