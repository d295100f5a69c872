"""What the numbers were measured on: the machine's cores and the versions of everything on
the measured path, recorded with every summary so that two runs can be compared honestly."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from typing import Any

from harness.kafka.local_kafka import KAFKA_VERSION

_PACKAGES = (
    "cryptography",
    "faststream",
    "aiokafka",
    "fastapi",
    "uvicorn",
    "sqlalchemy",
    "aiosqlite",
    "pydantic",
)


def _package(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _openssl_cli() -> str | None:
    try:
        done = subprocess.run(
            ["openssl", "version"], check=True, capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def _cryptography_openssl() -> str:
    from cryptography.hazmat.backends.openssl.backend import backend

    return str(backend.openssl_version_text())


def versions(*, external_kafka: bool = False) -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "openssl_cli": _openssl_cli(),
        "cryptography_openssl": _cryptography_openssl(),
        # The jar version of the local broker; an external cluster's is not known here.
        "kafka": "external (KAFKA_BOOTSTRAP_SERVERS)" if external_kafka else KAFKA_VERSION,
        **{name: _package(name) for name in _PACKAGES},
    }


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
    }
