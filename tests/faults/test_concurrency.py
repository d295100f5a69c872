"""Concurrency at 50: the single-use challenge and the PSD2 attempt limit hold when many
PUTs for one challenge race through the API, Kafka and the worker (SPEC §4, §5, §8), on a
binding challenge and on a device challenge alike.

tests/system/ already races 20 correct binding signatures and 50 correct device signatures;
here 50 race on each kind, the events and the store are counted exactly, and the attempt
limit is raced too.
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
from tests.faults.kinds import BINDING, DEVICE, DEVICES, Kind
from tests.support.http import Tokens, api_client, api_settings
from tests.support.worker import (
    DeviceKey,
    TopicReader,
    running_worker,
    start_reader,
    worker_settings,
)
from worker.settings import WorkerSettings
from worker.tables import (
    AttemptRow,
    ChallengeRow,
    DeviceAttemptRow,
    DeviceChallengeRow,
    DeviceKeyRow,
    DeviceRow,
    RefusalRow,
)

pytestmark = [pytest.mark.faults, pytest.mark.kafka]

RACERS = 50
KINDS = [pytest.param(BINDING, id="binding"), pytest.param(DEVICE, id="device")]


@dataclass(frozen=True)
class Target:
    """A pending challenge to race on: its kind, id, what the device signs, and its device."""

    kind: Kind
    id: str
    text: str  # the OTP, or the string to sign
    key: DeviceKey

    def signed_by(self, signer: DeviceKey) -> str:
        """A fresh signature (ECDSA is randomised) of what the challenge asks to sign."""
        return signer.sign(self.text) if self.kind is BINDING else signer.sign_text(self.text)


@dataclass
class Stack:
    http: httpx.AsyncClient
    tokens: Tokens
    settings: WorkerSettings
    events: TopicReader
    otps: TopicReader
    store: AsyncEngine

    async def target(self, kind: Kind) -> Target:
        """A new device's binding challenge; or, for a device challenge, the device bound
        first and a login opened for it."""
        key = DeviceKey()
        response = await self.http.post(
            DEVICES,
            headers=self.tokens.headers(),
            json={"person_id": "person-racing", "key_type": "ecdsa-p256", "key": key.public_hex},
        )
        assert response.status_code == 202, response.text
        challenge_id = response.json()["challenge"]["id"]
        [record] = await self.otps.wait_for(lambda r: r["value"]["challenge_id"] == challenge_id)
        binding = Target(BINDING, challenge_id, record["value"]["otp"], key)
        if kind is BINDING:
            return binding
        assert (await self.put(binding, binding.signed_by(key))).status_code == 204
        opened = await self.http.post(
            DEVICE.path, headers=self.tokens.headers(), json={"device_id": response.json()["id"]}
        )
        assert opened.status_code == 201, opened.text
        return Target(DEVICE, opened.json()["id"], opened.json()["string_to_sign"], key)

    async def put(self, target: Target, signature: str) -> httpx.Response:
        return await self.http.put(
            f"{target.kind.path}/{target.id}",
            headers=self.tokens.headers(),
            json={"signature": signature},
        )

    async def race(self, target: Target, signatures: list[str]) -> list[httpx.Response]:
        return await asyncio.gather(*(self.put(target, s) for s in signatures))

    async def events_of(self, challenge_id: str, count: int) -> list[dict[str, Any]]:
        """Every event of the challenge, once ``count`` have arrived; the caller makes sure,
        with a last request, that no further one is still on its way."""
        await self.events.wait_for(lambda r: r["value"]["subject"] == challenge_id, count=count)
        await self.events.poll()
        return [r["value"] for r in self.events.records if r["value"]["subject"] == challenge_id]

    async def challenge(self, target: Target) -> tuple[str, int, bool]:
        """(status, failed attempts, whether what verification needs is still kept)."""
        async with AsyncSession(self.store) as session:
            if target.kind is BINDING:
                row = await session.get(ChallengeRow, target.id)
                assert row is not None
                return row.status, row.failed_attempts, row.otp_digest is not None
            signing = await session.get(DeviceChallengeRow, target.id)
            assert signing is not None
            kept = signing.message_digest is not None
            return signing.status, signing.failed_attempts, kept

    async def count(self, target: Target, *, refusals: bool = False) -> int:
        table: Any = RefusalRow if refusals else AttemptRow
        if target.kind is DEVICE and not refusals:
            table = DeviceAttemptRow
        async with self.store.connect() as connection:
            counted = await connection.scalar(
                select(func.count()).select_from(table).where(table.challenge_id == target.id)
            )
        return int(counted or 0)

    async def effect(self, target: Target) -> str:
        """What a verified signature changes elsewhere: the device's status (binding), or
        whether the challenge's key was used (device signing)."""
        async with self.store.connect() as connection:
            if target.kind is BINDING:
                status = await connection.scalar(
                    select(DeviceRow.status)
                    .join(ChallengeRow, ChallengeRow.device_id == DeviceRow.id)
                    .where(ChallengeRow.id == target.id)
                )
                return str(status)
            used_at = await connection.scalar(
                select(DeviceKeyRow.used_at)
                .join(DeviceChallengeRow, DeviceChallengeRow.key_id == DeviceKeyRow.id)
                .where(DeviceChallengeRow.id == target.id)
            )
            return "unused" if used_at is None else "used"


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


@pytest.mark.parametrize("kind", KINDS)
async def test_fifty_distinct_correct_signatures_verify_exactly_once(
    stack: Stack, kind: Kind
) -> None:
    target = await stack.target(kind)
    signatures = list({target.signed_by(target.key) for _ in range(RACERS)})
    assert len(signatures) == RACERS  # ECDSA is randomised: fifty distinct correct signatures

    responses = await stack.race(target, signatures)

    assert Counter(r.status_code for r in responses) == {204: 1, 409: RACERS - 1}
    winner = next(s for s, r in zip(signatures, responses, strict=True) if r.status_code == 204)
    assert Counter(_listed_code(r) for r in responses if r.status_code == 409) == {
        "challenge_already_verified": RACERS - 1
    }

    # A 51st correct signature, after the race: refused like the losers, and its event comes
    # after every earlier one of the challenge (one partition, in order), so counting up to
    # it counts them all.
    late = await stack.put(target, target.signed_by(target.key))
    assert _listed_code(late) == "challenge_already_verified"
    events = await stack.events_of(target.id, count=1 + RACERS + 1)
    assert len(events) == 1 + RACERS + 1
    kinds = Counter((e["type"], e["data"].get("reason")) for e in events)
    assert kinds == {
        (kind.created, None): 1,
        (kind.verified, None): 1,
        (kind.rejected, "challenge_already_verified"): RACERS,
    }
    [verified] = [e for e in events if e["type"] == kind.verified]
    assert verified["data"]["signature"] == winner
    assert verified["data"]["attempt"] == 1
    assert len({e["id"] for e in events}) == len(events)

    assert await stack.challenge(target) == ("verified", 0, False)
    assert await stack.count(target) == 1
    assert await stack.count(target, refusals=True) == RACERS
    assert await stack.effect(target) == ("bound" if kind is BINDING else "used")


@pytest.mark.parametrize("kind", KINDS)
async def test_fifty_wrong_signatures_on_the_last_attempt_count_once(
    stack: Stack, kind: Kind
) -> None:
    target = await stack.target(kind)
    impostor = DeviceKey()
    for remaining in (4, 3, 2, 1):
        response = await stack.put(target, target.signed_by(impostor))
        assert response.status_code == 403, response.text
        assert _listed_code(response) == "invalid_signature"
        noun = "attempt remains" if remaining == 1 else "attempts remain"
        assert f"{remaining} {noun}" in response.json()["errors"][0]["detail"]
    assert await stack.challenge(target) == ("pending", 4, True)

    wrong = list({target.signed_by(impostor) for _ in range(RACERS)})
    assert len(wrong) == RACERS
    responses = await stack.race(target, wrong)

    # SPEC §3/§4: the fifth failure is the last one counted (403, none left); the challenge
    # is then locked, and every later attempt is refused uncounted with 409 challenge_locked.
    assert Counter(r.status_code for r in responses) == {403: 1, 409: RACERS - 1}
    [fifth] = [r for r in responses if r.status_code == 403]
    assert _listed_code(fifth) == "invalid_signature"
    assert "0 attempts remain" in fifth.json()["errors"][0]["detail"]
    assert Counter(_listed_code(r) for r in responses if r.status_code == 409) == {
        "challenge_locked": RACERS - 1
    }
    assert await stack.challenge(target) == ("locked", 5, False)
    assert await stack.count(target) == 5

    # The device's own, correct signature is refused after the lock (SPEC §4).
    right = await stack.put(target, target.signed_by(target.key))
    assert right.status_code == 409
    assert _listed_code(right) == "challenge_locked"

    events = await stack.events_of(target.id, count=1 + 4 + RACERS + 1)
    assert len(events) == 1 + 4 + RACERS + 1
    kinds = Counter((e["type"], e["data"].get("reason")) for e in events)
    assert kinds == {
        (kind.created, None): 1,
        (kind.rejected, "invalid_signature"): 5,
        (kind.rejected, "challenge_locked"): RACERS,
    }
    counted = [e["data"] for e in events if e["data"].get("reason") == "invalid_signature"]
    assert sorted(d["attempt"] for d in counted) == [1, 2, 3, 4, 5]
    assert sorted(d["attempts_remaining"] for d in counted) == [0, 1, 2, 3, 4]
    assert await stack.challenge(target) == ("locked", 5, False)
    assert await stack.count(target) == 5
    assert await stack.effect(target) == ("pending" if kind is BINDING else "unused")
