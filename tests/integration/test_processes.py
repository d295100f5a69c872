"""Two API processes and two worker processes at once, as ``make run`` and production run
them: every API replica gets the results of its own requests, and both workers work."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from tests.conftest import REPO_ROOT
from tests.integration.http_stack import Tokens
from tests.integration.stack import (
    DeviceKey,
    start_reader,
    worker_environment,
    worker_settings,
)

pytestmark = pytest.mark.kafka

SIGNATURES = "/v1/mfa/challenges/signatures"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def processes(commands: list[tuple[list[str], dict[str, str]]], log_dir: Path) -> Iterator[None]:
    started: list[subprocess.Popen[bytes]] = []
    try:
        for number, (args, env) in enumerate(commands):
            with (log_dir / f"process-{number}.log").open("wb") as log:
                started.append(
                    subprocess.Popen(
                        [sys.executable, *args],
                        env={**os.environ, **env},
                        cwd=REPO_ROOT,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
        yield
    finally:
        for process in started:
            process.send_signal(signal.SIGTERM)
        for process in started:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def _until_ready(url: str) -> None:
    async with httpx.AsyncClient() as http, asyncio.timeout(60):
        while True:
            try:
                if (await http.get(f"{url}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.3)


async def _group_members(bootstrap: str, group: str) -> int:
    """Members of the group once it is stable (every partition assigned), 60 s at most."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        async with asyncio.timeout(60):
            while True:
                try:
                    [description] = await admin.describe_consumer_groups([group])
                except KafkaError:
                    # The group's coordinator may still be loading while workers join.
                    await asyncio.sleep(0.3)
                    continue
                _error, _group, state, _type, _protocol, members = description.groups[0]
                if state == "Stable":
                    return len(members)
                await asyncio.sleep(0.3)
    finally:
        await admin.close()


@pytest.fixture
async def two_by_two(
    kafka_bootstrap: str, tmp_path: Path
) -> AsyncIterator[tuple[list[str], Tokens, Any, Path]]:
    settings = worker_settings(kafka_bootstrap, tmp_path / "store.db", topic_partitions=6)
    tokens = Tokens(tmp_path / "keys")
    # Both workers start together on one new SQLite file: one migrates, the other waits.
    worker_env = worker_environment(settings)
    ports = [_free_port(), _free_port()]
    api_env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "AUTH_JWKS_FILE": str(tokens.jwks_file),
        "AUTH_ISSUER": tokens.devkeys.DEFAULT_ISSUER,
        "AUTH_AUDIENCE": tokens.devkeys.DEFAULT_AUDIENCE,
        "COMMANDS_TOPIC": settings.commands_topic,
        "REPLIES_TOPIC": settings.replies_topic,
        "REPLY_WAIT_SECONDS": "20",
    }
    commands = [(["-m", "worker"], worker_env), (["-m", "worker"], worker_env)]
    commands += [(["-m", "api"], {**api_env, "API_PORT": str(port)}) for port in ports]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    with processes(commands, tmp_path):
        for url in urls:
            await _until_ready(url)
        # Both worker processes in the group before any work, so the work is shared.
        async with asyncio.timeout(60):
            while await _group_members(kafka_bootstrap, settings.consumer_group) < 2:
                await asyncio.sleep(0.3)
        yield urls, tokens, settings, tmp_path


async def test_each_api_process_gets_its_own_results(
    two_by_two: tuple[list[str], Tokens, Any, Path],
) -> None:
    urls, tokens, settings, log_dir = two_by_two
    otps = await start_reader(settings.kafka_bootstrap_servers, settings.otp_deliveries_topic)
    keys = [DeviceKey() for _ in range(12)]
    try:
        async with httpx.AsyncClient(headers=tokens.headers(), timeout=30) as http:
            # Registrations spread over both API processes, at the same time.
            registered = await asyncio.gather(
                *(
                    http.post(
                        f"{urls[n % 2]}/v1/mfa/devices",
                        json={"person_id": f"p-{n}", "key_type": "ecdsa-p256", "key": k.public_hex},
                    )
                    for n, k in enumerate(keys)
                )
            )
            assert [r.status_code for r in registered] == [202] * len(keys)
            challenges = [r.json()["challenge"]["id"] for r in registered]
            assert len(set(challenges)) == len(keys)

            records = await otps.wait_for(
                lambda r: r["value"]["challenge_id"] in challenges, count=len(keys)
            )
            otp_of = {r["value"]["challenge_id"]: r["value"]["otp"] for r in records}

            # Each signature goes to the OTHER replica than the one that registered it; the
            # even devices get a wrong signature, so every answer is checkable as its own.
            impostor = DeviceKey()
            answers = await asyncio.gather(
                *(
                    http.put(
                        f"{urls[(n + 1) % 2]}{SIGNATURES}/{challenge}",
                        json={
                            "signature": (impostor if n % 2 == 0 else keys[n]).sign(
                                otp_of[challenge]
                            )
                        },
                    )
                    for n, challenge in enumerate(challenges)
                )
            )
            assert [a.status_code for a in answers] == [403, 204] * (len(keys) // 2)

            states = await asyncio.gather(
                *(http.get(f"{urls[n % 2]}{SIGNATURES}/{c}") for n, c in enumerate(challenges))
            )
            assert [s.json()["status"] for s in states] == ["pending", "verified"] * (
                len(keys) // 2
            )
            assert [s.json()["id"] for s in states] == challenges
    finally:
        await otps.consumer.stop()

    # Two processes, one group member each; both did part of the work.
    members = await _group_members(settings.kafka_bootstrap_servers, settings.consumer_group)
    assert members == 2
    worker_logs = [(log_dir / f"process-{n}.log").read_text() for n in (0, 1)]
    assert all('"message": "handled ' in log for log in worker_logs)
    # Every line of every process's log is one JSON object naming its service.
    services = [
        {
            json.loads(line)["service"]
            for line in (log_dir / f"process-{n}.log").read_text().splitlines()
        }
        for n in range(4)
    ]
    assert services == [{"worker"}, {"worker"}, {"api"}, {"api"}]
    # No OTP reached any process's log (worker and API logs alike).
    logs = "\n".join(path.read_text() for path in log_dir.glob("process-*.log"))
    assert '"message": "handled ' in logs
    for otp in otp_of.values():
        assert not re.search(rf"(?<![0-9A-Za-z]){otp}(?![0-9A-Za-z])", logs)
