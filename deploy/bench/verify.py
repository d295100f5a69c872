"""``python -m deploy.bench.verify``: the cost of the project's verifier per signature.

Baseline: ``cryptography``'s own ECDSA verification of the same digest and DER signature
with an already-loaded key, the least any verifier must do. The project's verifier adds
hex and strict DER checks, and (as the worker calls it) loading the SEC1 key from bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from worker.errors import SignatureRejected
from worker.verify import verify_digest


def _per_call_microseconds(call: Callable[[], object], *, calls: int, rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            call()
        samples.append((time.perf_counter() - started) / calls * 1e6)
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)

    private_key = ec.generate_private_key(ec.SECP256R1())
    public_key = private_key.public_key()
    point = public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    otp = b"012345"
    digest = hashlib.sha256(otp).digest()
    der = private_key.sign(otp, ec.ECDSA(hashes.SHA256()))
    signature_hex = der.hex()
    prehashed = ec.ECDSA(utils.Prehashed(hashes.SHA256()))
    wrong_hex = private_key.sign(b"999999", ec.ECDSA(hashes.SHA256())).hex()

    def rejected() -> None:
        try:
            verify_digest(public_key=point, digest=digest, signature_hex=wrong_hex)
        except SignatureRejected:
            return
        raise AssertionError("a wrong signature verified")

    cases: list[tuple[str, Callable[[], object]]] = [
        (
            "baseline: cryptography verify, key loaded",
            lambda: public_key.verify(der, digest, prehashed),
        ),
        (
            "verify_digest, key loaded",
            lambda: verify_digest(
                public_key=public_key, digest=digest, signature_hex=signature_hex
            ),
        ),
        (
            "verify_digest, SEC1 key bytes (worker path)",
            lambda: verify_digest(public_key=point, digest=digest, signature_hex=signature_hex),
        ),
        ("verify_digest, wrong signature (rejected)", rejected),
    ]
    results = [
        (name, _per_call_microseconds(call, calls=args.calls, rounds=args.rounds))
        for name, call in cases
    ]
    baseline = statistics.median(results[0][1])
    print(f"{args.rounds} rounds x {args.calls} calls; median of rounds, one core\n")
    print(f"| {'case':<45} | {'us/call':>8} | {'stdev':>6} | {'calls/s':>8} | {'x baseline':>10} |")
    print(f"|{'-' * 47}|{'-' * 10}|{'-' * 8}|{'-' * 10}|{'-' * 12}|")
    for name, samples in results:
        median = statistics.median(samples)
        spread = statistics.stdev(samples) if len(samples) > 1 else 0.0
        print(
            f"| {name:<45} | {median:>8.1f} | {spread:>6.1f} | {1e6 / median:>8.0f} |"
            f" {median / baseline:>10.2f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
