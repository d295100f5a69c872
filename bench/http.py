"""``python -m bench.http``: latency and throughput of the product over HTTP.

A closed-loop smoke test against a running ``make run``, kept for a quick look at a live
stack; it is not part of ``make bench``. Closed loop (``--concurrency`` requests in flight)
hides stalls (coordinated omission): the measurements of record are ``bench.e2e``'s
open-loop ladders, which start their own stack.

Runs against the stack of ``make run`` (API on 127.0.0.1:8000, Kafka on 127.0.0.1:9092):
registers ``--devices`` devices, reads their OTPs from the OTP topic, and submits one
correct signature each (the seed endpoint), ``--concurrency`` requests in flight. Every
request is a real round trip: API, Kafka, a worker, the store, Kafka, API.

Baseline: ``GET /healthz`` on the API's admin port (``--admin-url``) at the same
concurrency, which never leaves the API process; the ratio says what Kafka, the worker and
the store add to a plain HTTP request. Loopback only, and every loop is bounded by the
request count.

Its requests come from one client, faster than the API's default per-client rate allows:
start the stack with the rate raised, ``CLIENT_RATE_PER_SECOND=100000
CLIENT_RATE_BURST=100000 make run``, or the excess is refused 429.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import httpx
from aiokafka import AIOKafkaConsumer
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from harness import devkeys
from harness.topics import tail
from schemas import topics

BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")


@dataclass
class Phase:
    name: str
    expected_status: int
    seconds: float
    latencies_ms: list[float]
    statuses: list[int]

    @property
    def ok(self) -> int:
        return sum(status == self.expected_status for status in self.statuses)

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def run_phase(
    name: str,
    expected_status: int,
    requests: Sequence[Callable[[], Awaitable[httpx.Response]]],
    concurrency: int,
) -> tuple[Phase, list[httpx.Response]]:
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def timed(request: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
        async with gate:
            started = time.perf_counter()
            response = await request()
            latencies.append((time.perf_counter() - started) * 1000)
            return response

    started = time.perf_counter()
    responses = await asyncio.gather(*(timed(request) for request in requests))
    seconds = time.perf_counter() - started
    phase = Phase(name, expected_status, seconds, latencies, [r.status_code for r in responses])
    return phase, list(responses)


async def otps_for(consumer: AIOKafkaConsumer, challenges: set[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    async with asyncio.timeout(60):
        while len(found) < len(challenges):
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    delivery = json.loads(record.value)
                    if delivery["challenge_id"] in challenges:
                        found[delivery["challenge_id"]] = delivery["otp"]
    return found


def print_table(phases: list[Phase], baseline: Phase) -> None:
    base_p50 = statistics.median(baseline.latencies_ms)
    header = f"| {'phase':<28} | {'n':>5} | {'ok':>5} | {'p50 ms':>7} | {'p95 ms':>7} |"
    header += f" {'p99 ms':>7} | {'max ms':>7} | {'req/s':>7} | {'p50 x base':>10} |"
    print(header)
    print("|" + "|".join("-" * (len(cell) + 0) for cell in header.split("|")[1:-1]) + "|")
    for phase in phases:
        p50 = statistics.median(phase.latencies_ms)
        print(
            f"| {phase.name:<28} | {len(phase.statuses):>5} | {phase.ok:>5} | {p50:>7.1f} |"
            f" {phase.percentile(0.95):>7.1f} | {phase.percentile(0.99):>7.1f} |"
            f" {max(phase.latencies_ms):>7.1f} | {len(phase.statuses) / phase.seconds:>7.0f} |"
            f" {p50 / base_p50:>10.1f} |"
        )


async def bench(url: str, admin_url: str, devices: int, concurrency: int) -> int:
    token = devkeys.mint_token(client_id="bench-bank", ttl=3600)
    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(devices)]
    otp_topic = await tail(BOOTSTRAP, topics.OTP_DELIVERIES)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with httpx.AsyncClient(
            base_url=url, headers=headers, timeout=30, limits=limits
        ) as http:
            probe = f"{admin_url}/healthz"
            await http.get(probe)  # connection warm-up, not measured
            baseline, _ = await run_phase(
                "baseline: GET /healthz",
                200,
                [lambda: http.get(probe) for _ in range(devices)],
                concurrency,
            )

            # Persons new to this run: a person keeps at most five bound devices, and the
            # stack's database outlives a run.
            run = uuid.uuid4().hex[:8]

            def register(
                key: ec.EllipticCurvePrivateKey, n: int
            ) -> Callable[[], Awaitable[httpx.Response]]:
                point = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
                person = f"bench-{run}-{n}"
                body = {"person_id": person, "key_type": "ecdsa-p256", "key": point.hex()}
                return lambda: http.post("/v1/mfa/devices", json=body)

            registered, responses = await run_phase(
                "POST /v1/mfa/devices",
                202,
                [register(key, n) for n, key in enumerate(keys)],
                concurrency,
            )
            challenges = [r.json()["challenge"]["id"] for r in responses if r.status_code == 202]
            otps = await otps_for(otp_topic, set(challenges))

            def submit(
                key: ec.EllipticCurvePrivateKey, challenge: str
            ) -> Callable[[], Awaitable[httpx.Response]]:
                signature = key.sign(otps[challenge].encode(), ec.ECDSA(hashes.SHA256())).hex()
                return lambda: http.put(
                    f"/v1/mfa/challenges/signatures/{challenge}", json={"signature": signature}
                )

            verified, _ = await run_phase(
                "PUT signature (seed endpoint)",
                204,
                [submit(key, challenge) for key, challenge in zip(keys, challenges, strict=True)],
                concurrency,
            )
    finally:
        await otp_topic.stop()
    print(f"{devices} devices, {concurrency} requests in flight, against {url}\n")
    print_table([baseline, registered, verified], baseline)
    return 0 if registered.ok == verified.ok == devices else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--admin-url", default="http://127.0.0.1:8010", help="its probes")
    parser.add_argument("--devices", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args(argv)
    return asyncio.run(bench(args.url, args.admin_url, args.devices, args.concurrency))


if __name__ == "__main__":
    raise SystemExit(main())
