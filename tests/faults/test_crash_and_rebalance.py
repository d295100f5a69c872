"""Reliability under faults: a worker killed mid-load, and partitions moving under load.

Real processes on a real broker and a real database (SQLite, then PostgreSQL): API replicas
(``python -m api``) and worker processes (``python -m worker``). A load shaped like a bank's
app runs through the API while workers are killed, restarted, added and stopped: devices
bound, and about a third of the requests device signing on the bound devices (SPEC §8).
Afterwards everything is counted (see :func:`tests.faults.invariants.check_invariants`), for
binding and device challenges alike: every request got a terminal answer, the store agrees
with the answers and with the events topic, no attempt is counted twice, nothing is verified
that should not be, and no event id carries two contents.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from harness.processes import Children
from harness.stack import worker_environment
from harness.topics import TopicRecord, read_topic, wait_for_group, wait_until_drained
from tests.faults.client import AppClient
from tests.faults.driver import LoadDriver
from tests.faults.invariants import Report, check_invariants, longest_stall
from tests.faults.otps import OtpBook
from tests.faults.scenarios import DEFAULT_MIX
from tests.faults.snapshot import read_store
from tests.faults.stack import start_stack
from tests.support.http import Tokens
from tests.support.worker import worker_settings
from worker.settings import WorkerSettings

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.slow]

PARTITIONS = 6
# Short enough that a partition stalled by a dead worker answers 503 verification_pending
# (which the load retries), long enough that a healthy but busy machine rarely does.
REPLY_WAIT_SECONDS = 3.0
# Requests in flight at once, as many customers' apps at the same moment.
CONCURRENCY = 24
APIS = 2


def _settings(kafka_bootstrap: str, database_url: str, tmp_path: Path) -> WorkerSettings:
    return worker_settings(
        kafka_bootstrap,
        tmp_path / "store.db",
        database_url=database_url,
        topic_partitions=PARTITIONS,
    )


async def _collect(
    settings: WorkerSettings, database_url: str, driver: LoadDriver, fleet: Children
) -> tuple[Report, list[TopicRecord], str]:
    """Once every command is committed (so every event is on the topic), count. Also how many
    commands were published and how many times workers took one up (the difference is what
    was processed again after a kill or a rebalance), for the summary."""
    bootstrap = settings.kafka_bootstrap_servers
    await wait_until_drained(bootstrap, settings.consumer_group, settings.commands_topic)
    events = await read_topic(bootstrap, settings.events_topic)
    otps = await read_topic(bootstrap, settings.otp_deliveries_topic)
    commands = len(await read_topic(bootstrap, settings.commands_topic))
    store = await read_store(database_url)
    report = check_invariants(driver.calls, driver.devices, store, events, otps)
    received = fleet.count_in_logs("worker-", '"message": "handled ')
    return report, events, f"commands={commands} taken_up={received}"


@asynccontextmanager
async def driving(
    settings: WorkerSettings, urls: list[str], tokens: Tokens, *, seed: int
) -> AsyncIterator[LoadDriver]:
    """The load on the stack at ``urls``: the default mix, binding and device signing, with
    the OTPs read as the customers' phones would get them."""
    async with (
        OtpBook.reading(settings.kafka_bootstrap_servers, settings.otp_deliveries_topic) as otps,
        httpx.AsyncClient(timeout=60) as http,
    ):
        client = AppClient(http, urls, tokens.headers())
        yield LoadDriver(client, otps, mix=DEFAULT_MIX, concurrency=CONCURRENCY, seed=seed)


def _assert_device_signing_under_load(report: Report) -> None:
    """Device signing was a real part of the load, and devices did sign."""
    assert report.device_requests >= report.requests // 5, report.summary()
    assert report.device_challenges > 0, report.summary()
    assert report.device_verified > 0, report.summary()


async def test_worker_killed_twice_under_load_loses_and_doubles_nothing(
    kafka_bootstrap: str, database_url: str, tmp_path: Path
) -> None:
    settings = _settings(kafka_bootstrap, database_url, tmp_path)
    tokens = Tokens(tmp_path / "keys")
    group = settings.consumer_group
    per_process = 1  # a worker process is one member of the group
    kills: list[int] = []  # when each SIGKILL was sent, in ms since the epoch
    started = time.monotonic()
    with Children(tmp_path / "logs") as fleet:
        urls = await start_stack(
            fleet, settings, tokens, apis=APIS, workers=2, reply_wait_seconds=REPLY_WAIT_SECONDS
        )
        ready = time.monotonic()
        async with driving(settings, urls, tokens, seed=7) as driver:

            async def crash_twice() -> None:
                # Each worker once, mid-load; a supervisor restarts it at once. The next kill
                # waits for the group that replaced the dead member (its session expired).
                for victim, after in (("worker-1", 400), ("worker-2", 1100)):
                    await driver.reached(after)
                    members = await wait_for_group(kafka_bootstrap, group, 2 * per_process)
                    kills.append(time.time_ns() // 1_000_000)
                    fleet.kill(victim)
                    fleet.restart(victim)
                    await wait_for_group(
                        kafka_bootstrap,
                        group,
                        2 * per_process,
                        known=members,
                        newcomers=per_process,
                    )
                # Keep the load going on the recovered group, not only through the faults.
                driver.finish_after(200)

            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(driver.run(min_requests=2000, wait_for_finish=True))
                tasks.create_task(crash_twice())
            loaded = time.monotonic()

        report, events, commands = await _collect(settings, database_url, driver, fleet)
    stalls = [longest_stall(events, at) for at in kills]
    recovery = ", ".join("?" if s is None else f"{s:.1f}s" for s in stalls)
    print(
        f"\nworker crash [{database_url.split(':')[0]}]: kills={len(kills)} "
        f"{report.summary()} {commands} recovery_after_kill=[{recovery}] "
        f"took={time.monotonic() - started:.0f}s (start {ready - started:.0f}s, "
        f"load {loaded - ready:.0f}s, count {time.monotonic() - loaded:.0f}s)"
    )
    assert len(kills) == 2
    assert report.requests >= 2000
    assert report.violations == [], "\n".join(report.violations[:50])
    assert (report.lost, report.double_counted, report.wrongly_verified) == (0, 0, 0)
    _assert_device_signing_under_load(report)
    # Device signing requests were stalled by the kills (503, retried as the same request,
    # their commands taken over by the restarted worker), and still none was lost or counted
    # twice.
    assert report.device_retried > 0, report.summary()
    # The killed workers really did work before and after: their logs show commands.
    for victim in ("worker-1", "worker-2"):
        assert '"message": "handled ' in fleet.logs_of(victim)


async def test_partitions_move_twice_under_load_nothing_lost_or_processed_twice(
    kafka_bootstrap: str, database_url: str, tmp_path: Path
) -> None:
    settings = _settings(kafka_bootstrap, database_url, tmp_path)
    tokens = Tokens(tmp_path / "keys")
    group = settings.consumer_group
    # One member per process on six partitions: a third process takes two of them, so the
    # newcomer is sure to take partitions and the one that leaves is sure to hand some over.
    per_process = 1
    extra: dict[str, str] = {}
    started = time.monotonic()
    joined_at = left_at = 0
    with Children(tmp_path / "logs") as fleet:
        urls = await start_stack(
            fleet,
            settings,
            tokens,
            apis=2,
            workers=2,
            reply_wait_seconds=REPLY_WAIT_SECONDS,
            worker_env=extra,
        )
        async with driving(settings, urls, tokens, seed=11) as driver:

            async def move_partitions() -> None:
                nonlocal joined_at, left_at
                await driver.reached(100)
                members = await wait_for_group(kafka_bootstrap, group, 2 * per_process)
                fleet.spawn(
                    "worker-3", ["-m", "worker"], env={**worker_environment(settings), **extra}
                )
                members = await wait_for_group(
                    kafka_bootstrap, group, 3 * per_process, known=members, newcomers=per_process
                )
                joined_at = driver.answered
                await driver.reached(joined_at + 100)
                # SIGTERM: the worker drains (hands back what it has not begun, finishes what
                # it has) and leaves the group; its partitions move to the other two.
                assert fleet.terminate("worker-1") == 0
                await wait_for_group(kafka_bootstrap, group, 2 * per_process)
                left_at = driver.answered
                driver.finish_after(100)

            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(driver.run(min_requests=500, wait_for_finish=True))
                tasks.create_task(move_partitions())

        report, _, commands = await _collect(settings, database_url, driver, fleet)
        # Registrations that moved while their first worker was delivering the OTP.
        lease_waits = fleet.count_in_logs("worker-", "waiting for another worker's OTP")
    print(
        f"\nrebalance [{database_url.split(':')[0]}]: joined after {joined_at} answers, "
        f"left after {left_at} answers; {report.summary()} {commands} "
        f"otp_lease_waits={lease_waits} "
        f"took={time.monotonic() - started:.0f}s"
    )
    assert report.requests >= 500
    assert report.violations == [], "\n".join(report.violations[:50])
    assert (report.lost, report.double_counted, report.wrongly_verified) == (0, 0, 0)
    _assert_device_signing_under_load(report)
    # One OTP per challenge: no registration was processed twice into a second OTP.
    assert report.several_otps == {}, f"challenges with several OTPs: {report.several_otps}"
    # The partitions did move: the newcomer processed commands, the leaver had before.
    assert '"message": "handled ' in fleet.logs_of("worker-3")
    assert '"message": "handled ' in fleet.logs_of("worker-1")
