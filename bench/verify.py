"""``python -m bench.verify``: the project's verifier on one core, against ``openssl speed``
measured in the same run, with the cases that show where the difference goes. The method:
docs/benchmarks.md."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from bench import openssl
from schemas.devices import DeviceStatus
from worker.errors import SignatureRejected
from worker.keys import PublicKeys
from worker.signatures import signature_check
from worker.state import DeviceState
from worker.verify import verify_digest

VAR = Path(__file__).resolve().parents[1] / "var" / "bench"
WORKER_PATH = "worker check: key cached by key id (worker path)"
COLD_KEY = "worker check: key decoded from its hex first"
_KEYS = 64
_BATCH = 64


def _rate(call: Callable[[int], object], seconds: float) -> float:
    """Calls per second of ``call(i)`` over at least ``seconds`` of wall time."""
    calls = 0
    started = time.perf_counter()
    while True:
        for index in range(_BATCH):
            call(index)
        calls += _BATCH
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return calls / elapsed


def cases() -> list[tuple[str, Callable[[int], object]]]:
    otps = [f"{number:06d}".encode() for number in range(_KEYS)]
    private = [ec.generate_private_key(ec.SECP256R1()) for _ in range(_KEYS)]
    public = [key.public_key() for key in private]
    points_hex = [
        key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint).hex() for key in public
    ]
    digests = [hashlib.sha256(otp).digest() for otp in otps]
    ders = [
        key.sign(otp, ec.ECDSA(hashes.SHA256())) for key, otp in zip(private, otps, strict=True)
    ]
    signatures = [der.hex() for der in ders]
    wrong = [key.sign(b"999999", ec.ECDSA(hashes.SHA256())).hex() for key in private]
    prehashed = ec.ECDSA(utils.Prehashed(hashes.SHA256()))

    def baseline(i: int) -> None:
        public[i].verify(ders[i], digests[i], prehashed)

    def loaded(i: int) -> None:
        verify_digest(public_key=public[i], digest=digests[i], signature_hex=signatures[i])

    devices = [
        DeviceState(
            id=f"device-{i}",
            key_id=f"key-{i}",
            client_id="bench",
            person_id=f"person-{i}",
            public_key=points_hex[i],
            status=DeviceStatus.PENDING,
        )
        for i in range(_KEYS)
    ]
    # As a worker holds them: decoded once per key id (at registration, or the first
    # attempt), then taken from the cache for every signature.
    check = signature_check(PublicKeys())
    for i in range(_KEYS):
        check(devices[i], digests[i], signatures[i])

    def worker_path(i: int) -> None:
        if not check(devices[i], digests[i], signatures[i]):
            raise AssertionError("a correct signature was rejected")

    def cold_key(i: int) -> None:
        verify_digest(
            public_key=bytes.fromhex(points_hex[i]), digest=digests[i], signature_hex=signatures[i]
        )

    def rejected(i: int) -> None:
        try:
            verify_digest(
                public_key=bytes.fromhex(points_hex[i]), digest=digests[i], signature_hex=wrong[i]
            )
        except SignatureRejected:
            return
        raise AssertionError("a wrong signature verified")

    return [
        ("baseline: cryptography verify, key loaded", baseline),
        ("verify_digest, key loaded", loaded),
        (WORKER_PATH, worker_path),
        (COLD_KEY, cold_key),
        ("verify_digest, wrong signature (rejected)", rejected),
    ]


def benchmark_cpu() -> int | None:
    """The CPU both sides run on: the last one this process may use."""
    allowed = sorted(os.sched_getaffinity(0))
    return allowed[-1] if allowed else None


@contextmanager
def pinned(cpu: int | None) -> Iterator[None]:
    if cpu is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def run_verify(seconds: float = 3.0, openssl_seconds: int = 3) -> dict[str, Any]:
    """Every case's verifications/s and openssl's, on one CPU; the ratio of the headline."""
    cpu = benchmark_cpu()
    with pinned(cpu):
        rates = {name: _rate(call, seconds) for name, call in cases()}
    speed = openssl.measure(openssl_seconds, cpu=cpu)
    project = rates[WORKER_PATH]
    return {
        "cpu": cpu,
        "seconds_per_case": seconds,
        "project_verify_per_s": round(project, 1),
        "openssl_verify_per_s": speed.verify_per_s,
        "openssl_sign_per_s": speed.sign_per_s,
        "ratio": round(project / speed.verify_per_s, 4),
        "cases_per_s": {name: round(rate, 1) for name, rate in rates.items()},
        "openssl": speed.as_dict(),
    }


def print_result(result: dict[str, Any]) -> None:
    reference = result["openssl_verify_per_s"]
    print(
        f"\nverify: one core (CPU {result['cpu']}), {result['seconds_per_case']:g} s per case;"
        f" reference `{result['openssl']['command']}` ({result['openssl']['version']})\n"
    )
    print(f"| {'case':<45} | {'verify/s':>9} | {'us/call':>8} | {'x openssl':>9} |")
    print(f"|{'-' * 47}|{'-' * 11}|{'-' * 10}|{'-' * 11}|")
    rows = [("openssl speed ecdsap256 (reference)", reference), *result["cases_per_s"].items()]
    for name, rate in rows:
        print(f"| {name:<45} | {rate:>9.0f} | {1e6 / rate:>8.1f} | {rate / reference:>9.2f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="per case")
    parser.add_argument("--openssl-seconds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=VAR / "verify.json")
    args = parser.parse_args(argv)
    result = run_verify(args.seconds, args.openssl_seconds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print_result(result)
    print(f"\nwritten {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
