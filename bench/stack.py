"""The two systems the end-to-end benchmark loads, each started as real processes on a free
port, with a SQLite store of its own under the stage's work folder.

- :func:`start_full_stack`: what ``make run`` starts to serve a request (deploy/dev/stack.py):
  ``python -m worker migrate``, ``WORKERS`` worker processes (2), then one API process, on
  a given Kafka, on private topics and a private consumer group. Not the OTP sink nor the
  audit and fraud consumers: they read the events off the request's path (and seeded
  challenges need no OTP), so the stack loaded here is Kafka, workers and API.
- :func:`start_inline_peer`: ``python -m bench.inline_peer``, the API with the
  worker's decision taken in-process.

Both are ready when they say so (``/readyz`` of the API; ``/healthz`` of the peer, which
has nothing else to wait for), and stopped by the :class:`~bench.processes.Children`
that started them.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

import httpx

from bench.databases import sqlite_url
from bench.processes import PYTHON, ROOT, Children
from bench.topics import BenchTopics
from deploy.dev import devkeys
from deploy.kafka.local_kafka import free_port

READY_TIMEOUT_SECONDS = 90.0


def auth_env(jwks: Path) -> dict[str, str]:
    return {
        "AUTH_JWKS_FILE": str(jwks),
        "AUTH_ISSUER": devkeys.DEFAULT_ISSUER,
        "AUTH_AUDIENCE": devkeys.DEFAULT_AUDIENCE,
    }


def migrate(env: dict[str, str], *, cwd: Path = ROOT) -> None:
    """The schema first, once, as ``make run`` and the Kubernetes Job do."""
    done = subprocess.run(
        [PYTHON, "-m", "worker", "migrate"],
        env={**os.environ, **env},
        cwd=cwd,
        check=False,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    if done.returncode != 0:
        output = done.stdout.decode(errors="replace")
        raise RuntimeError(f"python -m worker migrate failed:\n{output}")


def _answers_200(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def wait_http_ready(
    children: Children, url: str, *, timeout: float = READY_TIMEOUT_SECONDS
) -> None:
    deadline = time.monotonic() + timeout
    while not _answers_200(url):
        children.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} not ready after {timeout:.0f}s")
        time.sleep(0.25)


async def _wait_for_topics(bootstrap: str, names: set[str], within: float) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        async with asyncio.timeout(within):
            while not names <= set(await admin.list_topics()):
                await asyncio.sleep(0.25)
    finally:
        await admin.close()


def stack_env(
    *, bootstrap: str, database_url: str, jwks: Path, topics: BenchTopics
) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "DATABASE_URL": database_url,
        **auth_env(jwks),
        **topics.worker_env(),
        "PYTHONUNBUFFERED": "1",
    }


def start_workers(children: Children, env: dict[str, str], *, ports: list[int]) -> None:
    """One worker per port, its probes and metrics there (``make run`` holds 8001 and up)."""
    for number, port in enumerate(ports):
        children.spawn(
            f"worker-{number + 1}",
            ["-m", "worker"],
            env={**env, "WORKER_HTTP_PORT": str(port)},
            role="worker",
        )


def start_full_stack(
    children: Children, env: dict[str, str], *, topics: BenchTopics, worker_ports: list[int]
) -> str:
    """Workers, then the API once they have made the topics; the API's base URL."""
    start_workers(children, env, ports=worker_ports)
    needed = {topics.commands, topics.events, topics.replies, topics.otp}
    asyncio.run(_wait_for_topics(env["KAFKA_BOOTSTRAP_SERVERS"], needed, READY_TIMEOUT_SECONDS))
    port = free_port()
    children.spawn(
        "api",
        ["-m", "api"],
        env={**env, **topics.api_env(), "API_HOST": "127.0.0.1", "API_PORT": str(port)},
        role="api",
    )
    url = f"http://127.0.0.1:{port}"
    wait_http_ready(children, f"{url}/readyz")
    return url


def start_inline_peer(children: Children, *, database: Path, jwks: Path) -> str:
    """The inline peer on a free port, migrating its own store; its base URL."""
    port = free_port()
    children.spawn(
        "inline-peer",
        ["-m", "bench.inline_peer"],
        env={
            "DATABASE_URL": sqlite_url(database),
            "AUTO_MIGRATE": "true",
            **auth_env(jwks),
            "API_HOST": "127.0.0.1",
            "API_PORT": str(port),
            "PYTHONUNBUFFERED": "1",
        },
        role="inline-peer",
    )
    url = f"http://127.0.0.1:{port}"
    wait_http_ready(children, f"{url}/healthz")
    return url
