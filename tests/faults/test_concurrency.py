"""Concurrency at 50: the single-use challenge and the PSD2 attempt limit hold when many
PUTs for one challenge race through the API, Kafka and the worker (SPEC §4, §5).

tests/system/test_device_binding_http.py already races 20 correct signatures; here 50
race, the events and the store are counted exactly, and the attempt limit is raced too.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from storage.engine import create_engine
from tests.support.http import Tokens, api_client, api_settings
from tests.support.worker import (
    DeviceKey,
    TopicReader,
    running_worker,
    start_reader,
    worker_settings,
)
from worker.settings import WorkerSettings
from worker.tables import AttemptRow, ChallengeRow, DeviceRow, RefusalRow

pytestmark = [pytest.mark.faults, pytest.mark.kafka]

RACERS = 50
SIGNATURES = "/v1/mfa/challenges/signatures"
VERIFIED = "mfa.device_binding.signature_verified"
REJECTED = "mfa.device_binding.signature_rejected"
CREATED = "mfa.device_binding.challenge_created"


@dataclass
class Stack:
    http: httpx.AsyncClient
    tokens: Tokens
    settings: WorkerSettings
    events: TopicReader
    otps: TopicReader
    store: AsyncEngine

    async def register(self, key: DeviceKey) -> tuple[str, str]:
        """A new device's (challenge id, OTP)."""
        response = await self.http.post(
            "/v1/mfa/devices",
            headers=self.tokens.headers(),
            json={"person_id": "person-racing", "key_type": "ecdsa-p256", "key": key.public_hex},
        )
        assert response.status_code == 202, response.text
        challenge_id: str = response.json()["challenge"]["id"]
        [record] = await self.otps.wait_for(lambda r: r["value"]["challenge_id"] == challenge_id)
        return challenge_id, record["value"]["otp"]

    async def put(self, challenge_id: str, signature: str) -> httpx.Response:
        return await self.http.put(
            f"{SIGNATURES}/{challenge_id}",
            headers=self.tokens.headers(),
            json={"signature": signature},
        )

    async def race(self, challenge_id: str, signatures: list[str]) -> list[httpx.Response]:
        return await asyncio.gather(*(self.put(challenge_id, s) for s in signatures))

    async def events_of(self, challenge_id: str, count: int) -> list[dict[str, Any]]:
        """Every event of the challenge, once ``count`` have arrived; the caller makes sure,
        with a last request, that no further one is still on its way."""
        await self.events.wait_for(lambda r: r["value"]["subject"] == challenge_id, count=count)
        await self.events.poll()
        return [r["value"] for r in self.events.records if r["value"]["subject"] == challenge_id]

    async def challenge(self, challenge_id: str) -> ChallengeRow:
        async with AsyncSession(self.store) as session:
            challenge = await session.get(ChallengeRow, challenge_id)
        assert challenge is not None
        return challenge

    async def count(self, table: Any, challenge_id: str) -> int:
        async with self.store.connect() as connection:
            counted = await connection.scalar(
                select(func.count()).select_from(table).where(table.challenge_id == challenge_id)
            )
        return int(counted or 0)

    async def device_status(self, challenge_id: str) -> str:
        async with self.store.connect() as connection:
            status = await connection.scalar(
                select(DeviceRow.status)
                .join(ChallengeRow, ChallengeRow.device_id == DeviceRow.id)
                .where(ChallengeRow.id == challenge_id)
            )
        return str(status)


@pytest.fixture
async def stack(kafka_bootstrap: str, database_url: str, tmp_path: Path) -> AsyncIterator[Stack]:
    # Probes on a free port: other workers may be running on this host.
    settings = worker_settings(
        kafka_bootstrap, tmp_path / "store.db", database_url=database_url, worker_http_port=0
    )
    tokens = Tokens(tmp_path / "keys")
    # Fifty commands for one challenge are decided one after another (one partition, in
    # order): give the last of them time on a loaded machine rather than a 503.
    api = api_settings(settings, tokens, reply_wait_seconds=90.0)
    async with running_worker(settings), api_client(api) as http:
        events = await start_reader(kafka_bootstrap, settings.events_topic)
        otps = await start_reader(kafka_bootstrap, settings.otp_deliveries_topic)
        store = create_engine(settings.database_url)
        try:
            yield Stack(http, tokens, settings, events, otps, store)
        finally:
            await store.dispose()
            await events.consumer.stop()
            await otps.consumer.stop()


def _listed_code(response: httpx.Response) -> str:
    """The code of a list-shaped error body (SPEC §3), checking the shape on the way."""
    body = response.json()
    assert set(body) == {"errors"}, body
    [error] = body["errors"]
    assert set(error) == {"id", "status", "code", "title", "detail", "source"}
    assert error["status"] == response.status_code
    assert error["id"] == response.headers["X-Request-ID"]
    code: str = error["code"]
    return code


async def test_fifty_distinct_correct_signatures_bind_exactly_once(stack: Stack) -> None:
    key = DeviceKey()
    challenge_id, otp = await stack.register(key)
    signatures = list({key.sign(otp) for _ in range(RACERS)})
    assert len(signatures) == RACERS  # ECDSA is randomised: fifty distinct correct signatures

    responses = await stack.race(challenge_id, signatures)

    assert Counter(r.status_code for r in responses) == {204: 1, 409: RACERS - 1}
    winner = next(s for s, r in zip(signatures, responses, strict=True) if r.status_code == 204)
    assert Counter(_listed_code(r) for r in responses if r.status_code == 409) == {
        "challenge_already_verified": RACERS - 1
    }

    # A 51st correct signature, after the race: refused like the losers, and its event comes
    # after every earlier one of the challenge (one partition, in order), so counting up to
    # it counts them all.
    late = await stack.put(challenge_id, key.sign(otp))
    assert _listed_code(late) == "challenge_already_verified"
    events = await stack.events_of(challenge_id, count=1 + RACERS + 1)
    assert len(events) == 1 + RACERS + 1
    kinds = Counter((e["type"], e["data"].get("reason")) for e in events)
    assert kinds == {
        (CREATED, None): 1,
        (VERIFIED, None): 1,
        (REJECTED, "challenge_already_verified"): RACERS,
    }
    [verified] = [e for e in events if e["type"] == VERIFIED]
    assert verified["data"]["signature"] == winner
    assert verified["data"]["attempt"] == 1
    assert len({e["id"] for e in events}) == len(events)

    challenge = await stack.challenge(challenge_id)
    assert (challenge.status, challenge.failed_attempts) == ("verified", 0)
    assert challenge.otp_digest is None
    assert await stack.count(AttemptRow, challenge_id) == 1
    assert await stack.count(RefusalRow, challenge_id) == RACERS
    assert await stack.device_status(challenge_id) == "bound"


async def test_fifty_wrong_signatures_on_the_last_attempt_count_once(stack: Stack) -> None:
    key, impostor = DeviceKey(), DeviceKey()
    challenge_id, otp = await stack.register(key)
    for remaining in (4, 3, 2, 1):
        response = await stack.put(challenge_id, impostor.sign(otp))
        assert response.status_code == 403, response.text
        assert _listed_code(response) == "invalid_signature"
        noun = "attempt remains" if remaining == 1 else "attempts remain"
        assert f"{remaining} {noun}" in response.json()["errors"][0]["detail"]
    assert (await stack.challenge(challenge_id)).failed_attempts == 4

    wrong = list({impostor.sign(otp) for _ in range(RACERS)})
    assert len(wrong) == RACERS
    responses = await stack.race(challenge_id, wrong)

    # SPEC §3/§4: the fifth failure is the last one counted (403, none left); the challenge
    # is then locked, and every later attempt is refused uncounted with 409 challenge_locked.
    assert Counter(r.status_code for r in responses) == {403: 1, 409: RACERS - 1}
    [fifth] = [r for r in responses if r.status_code == 403]
    assert _listed_code(fifth) == "invalid_signature"
    assert "0 attempts remain" in fifth.json()["errors"][0]["detail"]
    assert Counter(_listed_code(r) for r in responses if r.status_code == 409) == {
        "challenge_locked": RACERS - 1
    }
    challenge = await stack.challenge(challenge_id)
    assert (challenge.status, challenge.failed_attempts) == ("locked", 5)
    assert challenge.otp_digest is None
    assert await stack.count(AttemptRow, challenge_id) == 5

    # The device's own, correct signature is refused after the lock (SPEC §4).
    right = await stack.put(challenge_id, key.sign(otp))
    assert right.status_code == 409
    assert _listed_code(right) == "challenge_locked"

    events = await stack.events_of(challenge_id, count=1 + 4 + RACERS + 1)
    assert len(events) == 1 + 4 + RACERS + 1
    kinds = Counter((e["type"], e["data"].get("reason")) for e in events)
    assert kinds == {
        (CREATED, None): 1,
        (REJECTED, "invalid_signature"): 5,
        (REJECTED, "challenge_locked"): RACERS,
    }
    counted = [e["data"] for e in events if e["data"].get("reason") == "invalid_signature"]
    assert sorted(d["attempt"] for d in counted) == [1, 2, 3, 4, 5]
    assert sorted(d["attempts_remaining"] for d in counted) == [0, 1, 2, 3, 4]
    challenge = await stack.challenge(challenge_id)
    assert (challenge.status, challenge.failed_attempts) == ("locked", 5)
    assert await stack.count(AttemptRow, challenge_id) == 5
    assert await stack.device_status(challenge_id) == "pending"
