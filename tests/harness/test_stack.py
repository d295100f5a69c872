"""The stack the tests and benchmarks start, as processes on a real broker: each API replica's
probes on its admin port and not on its API's, the limits a test sets, and the API under a
burst past its bound on requests in flight: the excess refused 503 at once, nothing refused
published, every request accepted decided by a worker."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from bench.databases import sqlite_url
from bench.scrape import counter
from bench.seed import BENCH_CLIENT_ID, seed
from harness import devkeys
from harness.processes import Children
from harness.stack import StackTopics, migrate, stack_environment, start_replicas
from harness.topics import OffsetWatch

pytestmark = pytest.mark.kafka

BOUND = 4
BURST = 40


def verified(database: Path) -> set[str]:
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT id FROM challenges WHERE status = 'verified'")
        return {str(row[0]) for row in rows}


async def test_a_burst_past_the_bound_is_shed_and_the_accepted_are_all_decided(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    jwks = devkeys.ensure_keys(keys)
    token = devkeys.mint_token(keys, client_id=BENCH_CLIENT_ID, ttl=600)
    database = tmp_path / "store.db"
    topics = StackTopics.fresh("harness.stack")
    env = stack_environment(
        bootstrap=kafka_bootstrap, database_url=sqlite_url(database), jwks=jwks, topics=topics
    )
    migrate(env)
    tickets = seed(sqlite_url(database), BURST)
    with Children(tmp_path / "logs") as children:
        [replica] = await start_replicas(
            children,
            worker_env=env,
            # Accepted requests wait for their replies while the worker is paused (below).
            api_env={
                **env,
                **topics.api_env(),
                "MAX_IN_FLIGHT": str(BOUND),
                "REPLY_WAIT_SECONDS": "30",
            },
            workers=1,
            apis=1,
        )
        limits = httpx.Limits(max_connections=BURST)
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(timeout=30, limits=limits, headers=headers) as http:
            assert (await http.get(f"{replica.admin_url}/readyz")).status_code == 200
            for path in ("/healthz", "/readyz", "/metrics"):
                assert (await http.get(f"{replica.url}{path}")).status_code == 404, path

            shed = 0

            async def put(index: int) -> tuple[int, float, str]:
                nonlocal shed
                ticket = tickets[index]
                started = time.perf_counter()
                response = await http.put(
                    f"{replica.url}{ticket.path}", json={"signature": ticket.signature}
                )
                took = time.perf_counter() - started
                code = response.json()["code"] if response.status_code == 503 else ""
                shed += response.status_code == 503
                return response.status_code, took, code

            async def resume_worker() -> None:
                # Until the burst past the bound has been answered (or 10 s), then the worker
                # decides what was accepted.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(10):
                        while shed < BURST - BOUND:
                            await asyncio.sleep(0.05)
                os.kill(worker_pid, signal.SIGCONT)

            # Every connection open first, so that the burst arrives at once; the worker
            # paused, so the accepted requests hold their places in flight however fast a
            # worker would have answered them: a loaded machine that sends the burst slowly
            # still sends it past the bound.
            await asyncio.gather(*(http.get(f"{replica.url}/openapi.json") for _ in range(BURST)))
            worker_pid = children["worker-1"].pid
            os.kill(worker_pid, signal.SIGSTOP)
            try:
                answers, _ = await asyncio.gather(
                    asyncio.gather(*(put(index) for index in range(BURST))),
                    resume_worker(),
                )
            finally:
                os.kill(worker_pid, signal.SIGCONT)
            metrics = (await http.get(f"{replica.admin_url}/metrics")).text

        accepted = {tickets[i].challenge_id for i, a in enumerate(answers) if a[0] == 204}
        refused = [a for a in answers if a[0] == 503]
        assert len(accepted) + len(refused) == BURST, answers
        assert len(accepted) == BOUND
        assert len(refused) == BURST - BOUND
        assert {code for _, _, code in refused} == {"service_unavailable"}
        assert counter(metrics, "device_binding_limited", {"limit": "in_flight"}) == len(refused)
        # Answered at once, where an accepted request waits for Kafka and a worker.
        assert max(took for _, took, _ in refused) < 1.0

        watch = OffsetWatch(kafka_bootstrap)
        await watch.start()
        try:
            assert await watch.wait_caught_up(topics.group, topics.commands, within=60)
        finally:
            await watch.stop()
        # Every accepted request decided and stored, no refused one published.
        assert verified(database) == accepted
