"""The systems the end-to-end stages load, started on free ports: the full stack (the API
and its workers on a Kafka broker, :func:`start_full_stack`) and its inline peer
(:func:`start_inline_peer`). Both run with the API's limits out of the way
(``harness.stack.OPEN_API_LIMITS``) unless a stage sets them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from bench.databases import sqlite_url
from bench.seed import BENCH_CLIENT_ID
from harness import devkeys
from harness.otp_keys import otp_environment
from harness.ports import free_port
from harness.processes import Children
from harness.stack import (
    OPEN_API_LIMITS,
    StackTopics,
    auth_environment,
    migrate,
    stack_environment,
    start_replicas,
    wait_until_ready,
)
from harness.topics import OffsetWatch

CATCH_UP_SECONDS = 180.0


@dataclass(frozen=True)
class Running:
    """A system up: where to send, where each process's ``/metrics`` are, and how to wait
    for the work of earlier requests to be done (seconds it took)."""

    url: str
    metrics: dict[str, str]
    settle: Callable[[], float]


def prepare(workdir: Path, name: str) -> tuple[Path, Path, Path]:
    """In ``workdir``: the JWKS of a development key, a file holding a token of the
    benchmark's client signed by it, and the path of a fresh SQLite database ``<name>.db``."""
    workdir.mkdir(parents=True, exist_ok=True)
    keys = workdir / "keys"
    jwks = devkeys.ensure_keys(keys)
    token_file = workdir / "token.txt"
    token_file.write_text(devkeys.mint_token(keys, client_id=BENCH_CLIENT_ID, ttl=4 * 3600))
    database = workdir / f"{name}.db"
    for stale in workdir.glob(f"{name}.db*"):
        stale.unlink()
    return jwks, token_file, database


def start_inline_peer(children: Children, *, database: Path, jwks: Path) -> Running:
    """The inline peer on a free port, migrating its own store."""
    port = free_port()
    children.spawn(
        "inline-peer",
        ["-m", "bench.inline_peer"],
        env={
            "DATABASE_URL": sqlite_url(database),
            "AUTO_MIGRATE": "true",
            **auth_environment(jwks),
            **otp_environment(),
            **OPEN_API_LIMITS,
            "API_HOST": "127.0.0.1",
            "API_PORT": str(port),
            "PYTHONUNBUFFERED": "1",
        },
        role="inline-peer",
    )
    url = f"http://127.0.0.1:{port}"
    asyncio.run(wait_until_ready(f"{url}/healthz", children=children))
    return Running(url, {"inline-peer": f"{url}/metrics"}, lambda: 0.0)


def start_full_stack(
    children: Children,
    *,
    bootstrap: str,
    database: Path,
    jwks: Path,
    workers: int,
    api_env: Mapping[str, str] | None = None,
) -> Running:
    """One API replica and ``workers`` workers on fresh topics and the SQLite ``database``;
    ``api_env`` adds to the API's environment (its limits, say)."""
    topics = StackTopics.fresh("bench.e2e")
    env = stack_environment(
        bootstrap=bootstrap, database_url=sqlite_url(database), jwks=jwks, topics=topics
    )
    migrate(env)
    ports = [free_port() for _ in range(workers)]
    [replica] = asyncio.run(
        start_replicas(
            children,
            worker_env=env,
            api_env={**env, **topics.api_env(), **(api_env or {})},
            workers=workers,
            apis=1,
            worker_ports=ports,
        )
    )
    metrics = {"api": f"{replica.admin_url}/metrics"}
    metrics |= {
        f"worker-{n + 1}": f"http://127.0.0.1:{port}/metrics" for n, port in enumerate(ports)
    }
    return Running(replica.url, metrics, _caught_up(bootstrap, topics))


def _caught_up(bootstrap: str, topics: StackTopics) -> Callable[[], float]:
    def settle() -> float:
        async def caught_up() -> float:
            watch = OffsetWatch(bootstrap)
            await watch.start()
            started = time.monotonic()
            try:
                if not await watch.wait_caught_up(
                    topics.group, topics.commands, within=CATCH_UP_SECONDS
                ):
                    print(f"  (workers still behind after {CATCH_UP_SECONDS:.0f}s)", flush=True)
            finally:
                await watch.stop()
            return time.monotonic() - started

        return asyncio.run(caught_up())

    return settle
