"""Crash recovery of the binding decisions: the worker fails between storing a decision and
announcing it, and the redelivered command finishes the job without deciding twice.

Real store (SQLite), an outbox that fails on demand instead of Kafka.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from harness.otp_keys import RUN_KEYRING
from schemas.commands import Command, RegisterDevice, UnbindDevice, VerifySignature
from schemas.devices import MAX_BOUND_DEVICES_PER_PERSON, DeviceRegistration
from schemas.otp import OtpDelivery
from schemas.replies import Reply
from storage.engine import create_engine
from storage.migrations import upgrade
from tests.support.worker import DeviceKey
from worker.answers import utc_now
from worker.attempts.runs import AttemptRuns
from worker.attempts.sqlite import SqliteAttemptStore
from worker.attempts.verification import BatchVerifier
from worker.binding import BindingService
from worker.migrations import WORKER_MIGRATIONS
from worker.outbox import Acknowledgement
from worker.store import Store


class Crash(Exception):
    """The worker dies here (a broker error, a killed process)."""


class FlakyOutbox:
    def __init__(self) -> None:
        self.events: list[dict[str, object]] = []
        self.otps: list[OtpDelivery] = []
        self.replies: list[Reply] = []
        self.fail_once: set[str] = set()

    def _maybe_fail(self, what: str) -> None:
        if what in self.fail_once:
            self.fail_once.discard(what)
            raise Crash(what)

    async def event(self, key: str, event_json: str) -> Acknowledgement:
        self._maybe_fail("event")
        self.events.append(json.loads(event_json))
        return _acknowledged()

    async def deliver_otp(self, delivery: OtpDelivery) -> None:
        self._maybe_fail("otp")
        self.otps.append(delivery)

    async def reply(self, reply: Reply, partition: int | None) -> Acknowledgement:
        self._maybe_fail("reply")
        self.replies.append(reply)
        return _acknowledged()


def _acknowledged() -> Acknowledgement:
    acknowledgement: Acknowledgement = asyncio.get_running_loop().create_future()
    acknowledgement.set_result(None)
    return acknowledgement


class Service:
    """The worker's two paths on one real store: signature attempts through the batched
    attempt store, every other command through BindingService; one command at a time, as
    redeliveries come."""

    def __init__(
        self,
        store: Store,
        outbox: FlakyOutbox,
        database: Path,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        # Six OTPs for one person within the hour: the device-limit scenario needs them.
        self.binding = BindingService(
            store,
            outbox,
            keyring=RUN_KEYRING,
            challenge_ttl=timedelta(minutes=5),
            clock=clock,
            otp_sends_per_hour=10,
        )
        self.attempts = SqliteAttemptStore(database)
        self._runs = AttemptRuns(
            self.attempts, outbox, verifier=BatchVerifier(0), keyring=RUN_KEYRING, clock=clock
        )

    async def handle(self, command: Command) -> None:
        if isinstance(command, VerifySignature):
            await asyncio.gather(*await self._runs.handle([(command, None)]))
        else:
            await self.binding.handle(command)


@pytest.fixture
async def service_and_outbox(tmp_path: Path) -> AsyncIterator[tuple[Service, FlakyOutbox, Store]]:
    database = tmp_path / "store.db"
    engine = create_engine(f"sqlite+aiosqlite:///{database}")
    await upgrade(engine, WORKER_MIGRATIONS)
    outbox = FlakyOutbox()
    store = Store(engine)
    services: list[Service] = []

    try:
        services.append(Service(store, outbox, database))
        yield services[0], outbox, store
    finally:
        for service in services:
            await service.attempts.close()
        await engine.dispose()


def _header() -> dict[str, Any]:
    return {
        "command_id": uuid.uuid4(),
        "request_id": "req-1",
        "client_id": "bank-1",
        "reply_to": "api-1",
        "issued_at": datetime.now(UTC),
    }


def _register(key: DeviceKey) -> RegisterDevice:
    return RegisterDevice(
        **_header(),
        device_id=uuid.uuid4(),
        key_id=uuid.uuid4(),
        challenge_id=uuid.uuid4(),
        registration=DeviceRegistration(
            person_id="person-1", key_type="ecdsa-p256", key=key.public_hex
        ),
    )


async def test_otp_lost_before_delivery_is_replaced_on_redelivery(
    service_and_outbox: tuple[Service, FlakyOutbox, Store],
) -> None:
    service, outbox, store = service_and_outbox
    key = DeviceKey()
    command = _register(key)
    outbox.fail_once.add("otp")

    with pytest.raises(Crash):
        await service.handle(command)  # stored, but the OTP never reached Kafka
    await service.handle(command)  # redelivered

    [delivery] = outbox.otps
    binding = await store.find_binding(str(command.challenge_id))
    assert binding is not None
    # The challenge answers to the OTP that was delivered, not the one lost with the crash.
    sealed = binding.challenge.otp_digest
    assert sealed is not None
    opened = RUN_KEYRING.open(binding.challenge.id, sealed)
    assert opened == hashlib.sha256(delivery.otp.encode()).digest()
    assert binding.challenge.otp_delivered
    assert [r.outcome for r in outbox.replies] == ["ok"]
    assert len(outbox.events) == 1

    verify = VerifySignature(
        **_header(),
        challenge_id=command.challenge_id,
        signature=key.sign(delivery.otp),
    )
    await service.handle(verify)
    assert outbox.replies[-1].outcome == "ok"


async def test_otp_delivered_before_the_crash_is_not_sent_again(
    service_and_outbox: tuple[Service, FlakyOutbox, Store],
) -> None:
    service, outbox, _ = service_and_outbox
    command = _register(DeviceKey())
    outbox.fail_once.add("event")

    with pytest.raises(Crash):
        await service.handle(command)
    await service.handle(command)

    assert len(outbox.otps) == 1
    assert len(outbox.events) == 1
    # The reply may have gone out beside the failed event; every copy says the same.
    assert outbox.replies
    assert all(r == outbox.replies[0] for r in outbox.replies)
    assert outbox.replies[0].outcome == "ok"


async def test_attempt_stored_but_not_announced_is_announced_once_counted_once(
    service_and_outbox: tuple[Service, FlakyOutbox, Store],
) -> None:
    service, outbox, store = service_and_outbox
    key, impostor = DeviceKey(), DeviceKey()
    registration = _register(key)
    await service.handle(registration)
    otp = outbox.otps[0].otp
    verify = VerifySignature(
        **_header(),
        challenge_id=registration.challenge_id,
        signature=impostor.sign(otp),
    )
    outbox.fail_once.add("reply")

    with pytest.raises(Crash):
        await service.handle(verify)
    await service.handle(verify)

    binding = await store.find_binding(str(registration.challenge_id))
    assert binding is not None
    assert binding.challenge.failed_attempts == 1
    attempt_events = outbox.events[1:]
    # Published with the attempt, and again with the redelivery: the same event, same id.
    assert len(attempt_events) == 2
    assert attempt_events[0] == attempt_events[1]
    assert outbox.replies[-1].reason == "invalid_signature"
    assert outbox.replies[-1].attempts_remaining == 4


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


async def test_a_refusal_announced_again_is_the_same_event(
    service_and_outbox: tuple[Service, FlakyOutbox, Store], tmp_path: Path
) -> None:
    _, outbox, store = service_and_outbox
    clock = Clock()
    service = Service(store, outbox, tmp_path / "store.db", clock=clock)
    key = DeviceKey()
    registration = _register(key)
    await service.handle(registration)
    clock.now += timedelta(minutes=6)
    verify = VerifySignature(
        **_header(), challenge_id=registration.challenge_id, signature=key.sign("123456")
    )
    outbox.fail_once.add("event")

    with pytest.raises(Crash):
        await service.handle(verify)  # refused as expired, the event lost with the crash
    clock.now += timedelta(seconds=30)
    await service.handle(verify)  # redelivered later
    await service.handle(verify)  # and once more

    refusals = outbox.events[1:]
    assert len(refusals) == 2
    # Same id and same content, decision time included: an auditor sees one fact, twice.
    assert refusals[0] == refusals[1]
    assert refusals[0]["data"]["reason"] == "challenge_expired"  # type: ignore[index]
    # The crash came at the event's hand-over, before its reply's: two replies, both alike.
    assert [r.reason for r in outbox.replies[1:]] == ["challenge_expired"] * 2
    await service.attempts.close()


async def test_a_redelivered_refusal_stands_when_the_challenge_changed_since(
    service_and_outbox: tuple[Service, FlakyOutbox, Store],
) -> None:
    service, outbox, _ = service_and_outbox
    keys = [DeviceKey() for _ in range(MAX_BOUND_DEVICES_PER_PERSON + 1)]
    registrations = [_register(key) for key in keys]
    signatures = []

    async def register(index: int) -> None:
        await service.handle(registrations[index])
        signatures.append(
            VerifySignature(
                **_header(),
                challenge_id=registrations[index].challenge_id,
                signature=keys[index].sign(outbox.otps[-1].otp),
            )
        )

    # Three bound, then the last three registered (at most three pending at once: SPEC §9)
    # while the person has fewer than five bound devices, then two of those bound.
    for index in range(3):
        await register(index)
        await service.handle(signatures[index])
    for index in range(3, 6):
        await register(index)
    for verify in signatures[3:5]:
        await service.handle(verify)
    last = signatures[-1]
    outbox.fail_once.add("event")
    with pytest.raises(Crash):
        await service.handle(last)  # the person's sixth device: refused
    # A slot frees before the command is redelivered.
    await service.handle(UnbindDevice(**_header(), device_id=registrations[0].device_id))
    await service.handle(last)

    assert outbox.replies[-1].reason == "device_limit_reached"
    assert outbox.events[-1]["type"] == "mfa.device_binding.signature_rejected"
    # A new submission is a new decision: now it binds.
    retry = VerifySignature(**{**last.model_dump(), "command_id": uuid.uuid4()})
    await service.handle(retry)
    assert outbox.replies[-1].outcome == "ok"
