"""The reference the verifier is held against: ``openssl speed -seconds 3 ecdsap256``.

OpenSSL's own benchmark of P-256 verification on this machine, in the same run as the
project's verifier and pinned to the same core, so that the ratio says how much of the
machine's ECDSA speed the verifier keeps, whatever the machine. It prints (OpenSSL 3.x)::

                                  sign    verify    sign/s verify/s
     256 bits ecdsa (nistp256)   0.0000s   0.0001s  31534.4  11250.0

Note that the system's ``openssl`` need not be the OpenSSL that ``cryptography`` carries
(its wheels bundle their own); both versions are reported.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

_ROW = re.compile(
    r"^\s*256\s+bits\s+ecdsa\s+\(nistp256\)\s+"
    r"(?P<sign_s>[\d.]+)s\s+(?P<verify_s>[\d.]+)s\s+"
    r"(?P<sign_per_s>[\d.]+)\s+(?P<verify_per_s>[\d.]+)\s*$",
    re.MULTILINE,
)


@dataclass(frozen=True)
class OpensslSpeed:
    sign_per_s: float
    verify_per_s: float
    version: str
    command: str
    cpu: int | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_speed(output: str) -> tuple[float, float]:
    """(sign/s, verify/s) of the nistp256 row of ``openssl speed`` output."""
    match = _ROW.search(output)
    if match is None:
        raise ValueError("no '256 bits ecdsa (nistp256)' row in the openssl speed output")
    return float(match["sign_per_s"]), float(match["verify_per_s"])


def openssl_version() -> str:
    done = subprocess.run(
        ["openssl", "version"], check=True, capture_output=True, text=True, timeout=30
    )
    return done.stdout.strip()


def _pinned(cpu: int | None) -> Callable[[], None] | None:
    if cpu is None:
        return None

    def pin() -> None:
        os.sched_setaffinity(0, {cpu})

    return pin


def measure(seconds: int = 3, *, cpu: int | None = None) -> OpensslSpeed:
    """Run ``openssl speed -seconds N ecdsap256`` (on ``cpu`` if given) and parse it."""
    command = ["openssl", "speed", "-seconds", str(seconds), "ecdsap256"]
    done = subprocess.run(
        command,
        check=True,
        capture_output=True,
        text=True,
        timeout=seconds * 4 + 60,
        preexec_fn=_pinned(cpu),
    )
    sign, verify = parse_speed(done.stdout)
    return OpensslSpeed(
        sign_per_s=sign,
        verify_per_s=verify,
        version=openssl_version(),
        command=" ".join(command),
        cpu=cpu,
    )
