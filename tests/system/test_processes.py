"""Two API processes and two worker processes at once, as ``make run`` and production run
them: every API replica gets the results of its own requests, and both workers work."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.processes import Children
from harness.stack import start_stack, worker_environment
from harness.topics import wait_for_group
from tests.support.http import Tokens
from tests.support.worker import DeviceKey, start_reader, worker_settings

pytestmark = pytest.mark.kafka

SIGNATURES = "/v1/mfa/challenges/signatures"


@pytest.fixture
async def two_by_two(
    kafka_bootstrap: str, tmp_path: Path
) -> AsyncIterator[tuple[list[str], Tokens, Any, Children]]:
    settings = worker_settings(kafka_bootstrap, tmp_path / "store.db", topic_partitions=6)
    tokens = Tokens(tmp_path / "keys")
    api_env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "AUTH_JWKS_FILE": str(tokens.jwks_file),
        "AUTH_ISSUER": tokens.devkeys.DEFAULT_ISSUER,
        "AUTH_AUDIENCE": tokens.devkeys.DEFAULT_AUDIENCE,
        "COMMANDS_TOPIC": settings.commands_topic,
        "REPLIES_TOPIC": settings.replies_topic,
        "REPLY_WAIT_SECONDS": "20",
    }
    with Children(tmp_path / "logs") as children:
        # Both workers start together on one new SQLite file: one migrates, the other waits;
        # both are in the group before any work, so the work is shared.
        urls = await start_stack(
            children,
            worker_env=worker_environment(settings),
            api_env=api_env,
            workers=2,
            apis=2,
        )
        yield urls, tokens, settings, children


async def test_each_api_process_gets_its_own_results(
    two_by_two: tuple[list[str], Tokens, Any, Children],
) -> None:
    urls, tokens, settings, children = two_by_two
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
    members = await wait_for_group(settings.kafka_bootstrap_servers, settings.consumer_group, 2)
    assert len(members) == 2
    names = ["worker-1", "worker-2", "api-1", "api-2"]
    assert all('"message": "handled ' in children.logs_of(name) for name in names[:2])
    # Every line of every process's log is one JSON object naming its service.
    services = [
        {json.loads(line)["service"] for line in children.logs_of(name).splitlines() if line}
        for name in names
    ]
    assert services == [{"worker"}, {"worker"}, {"api"}, {"api"}]
    # No OTP reached any process's log (worker and API logs alike).
    logs = "\n".join(children.logs_of(name) for name in names)
    assert '"message": "handled ' in logs
    for otp in otp_of.values():
        assert not re.search(rf"(?<![0-9A-Za-z]){otp}(?![0-9A-Za-z])", logs)
