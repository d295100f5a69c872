"""Crash recovery of the binding decisions: the worker fails between storing a decision and
announcing it, and the redelivered command finishes the job without deciding twice.

Real store (SQLite), an outbox that fails on demand instead of Kafka.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from schemas.commands import RegisterDevice, VerifySignature
from schemas.devices import DeviceRegistration
from schemas.otp import OtpDelivery
from schemas.replies import Reply
from tests.integration.stack import DeviceKey
from worker.binding import BindingService
from worker.database import create_engine, create_tables
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

    async def publish_event(self, key: str, event_json: str) -> None:
        self._maybe_fail("event")
        self.events.append(json.loads(event_json))

    async def deliver_otp(self, delivery: OtpDelivery) -> None:
        self._maybe_fail("otp")
        self.otps.append(delivery)

    async def reply(self, reply: Reply) -> None:
        self._maybe_fail("reply")
        self.replies.append(reply)


@pytest.fixture
async def service_and_outbox(
    tmp_path: Path,
) -> AsyncIterator[tuple[BindingService, FlakyOutbox, Store]]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
    await create_tables(engine)
    outbox = FlakyOutbox()
    store = Store(engine)
    try:
        yield BindingService(store, outbox, challenge_ttl=timedelta(minutes=5)), outbox, store
    finally:
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
    service_and_outbox: tuple[BindingService, FlakyOutbox, Store],
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
    assert binding.challenge.otp_digest == hashlib.sha256(delivery.otp.encode()).digest()
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
    service_and_outbox: tuple[BindingService, FlakyOutbox, Store],
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
    service_and_outbox: tuple[BindingService, FlakyOutbox, Store],
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
