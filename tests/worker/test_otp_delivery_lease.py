"""The OTP delivery lease: two workers given the same registration command (a rebalance moved
it while the first was still at it) deliver one OTP between them, and a worker that died
holding the lease has its delivery taken over once the lease expires.

Two BindingService instances on one real store (SQLite), as two worker processes would be;
an outbox whose OTP delivery can be held open to stand for a worker mid-delivery.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from harness.otp_keys import RUN_KEYRING
from schemas.otp import OtpDelivery
from storage.engine import create_engine
from storage.migrations import upgrade
from tests.support.worker import DeviceKey
from tests.worker.test_binding_recovery import FlakyOutbox, _register
from worker.binding import BindingService
from worker.errors import StoreContention
from worker.migrations import WORKER_MIGRATIONS
from worker.store import Binding, Store

LEASE = timedelta(seconds=10)


class HeldOutbox(FlakyOutbox):
    """Delivers OTPs only once ``release`` is set: a worker stuck mid-delivery."""

    def __init__(self) -> None:
        super().__init__()
        self.delivering = asyncio.Event()
        self.release = asyncio.Event()

    async def deliver_otp(self, delivery: OtpDelivery) -> None:
        self.delivering.set()
        await self.release.wait()
        await super().deliver_otp(delivery)


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
    await upgrade(engine, WORKER_MIGRATIONS)
    try:
        yield Store(engine)
    finally:
        await engine.dispose()


def _worker(
    store: Store, outbox: FlakyOutbox, clock: Clock, lease: timedelta = LEASE
) -> BindingService:
    return BindingService(
        store,
        outbox,
        keyring=RUN_KEYRING,
        challenge_ttl=timedelta(minutes=5),
        otp_delivery_lease=lease,
        clock=clock,
    )


def _digest(otp: str) -> bytes:
    return hashlib.sha256(otp.encode()).digest()


def _stored_digest(binding: Binding) -> bytes | None:
    """The challenge's digest as stored, opened (it is stored sealed)."""
    sealed = binding.challenge.otp_digest
    return None if sealed is None else RUN_KEYRING.open(binding.challenge.id, sealed)


async def test_a_worker_given_the_command_mid_delivery_waits_and_sends_no_second_otp(
    store: Store,
) -> None:
    clock = Clock()
    first_outbox, second_outbox = HeldOutbox(), FlakyOutbox()
    first, second = _worker(store, first_outbox, clock), _worker(store, second_outbox, clock)
    command = _register(DeviceKey())

    delivering = asyncio.create_task(first.handle(command))
    await first_outbox.delivering.wait()  # stored; the OTP is on its way
    redelivered = asyncio.create_task(second.handle(command))
    await asyncio.sleep(0.3)
    assert not redelivered.done(), "the second worker must wait for the lease holder"
    first_outbox.release.set()
    await asyncio.wait_for(asyncio.gather(delivering, redelivered), 5)

    assert second_outbox.otps == []
    [delivery] = first_outbox.otps
    binding = await store.find_binding(str(command.challenge_id))
    assert binding is not None
    assert binding.challenge.otp_delivered
    assert _stored_digest(binding) == _digest(delivery.otp)
    # Both announce the registration, identically.
    assert first_outbox.events == second_outbox.events
    assert [r.outcome for r in first_outbox.replies + second_outbox.replies] == ["ok", "ok"]


async def test_a_lease_left_by_a_dead_worker_is_taken_over_once_expired(store: Store) -> None:
    clock = Clock()
    dead_outbox, next_outbox = HeldOutbox(), FlakyOutbox()
    dead, survivor = _worker(store, dead_outbox, clock), _worker(store, next_outbox, clock)
    command = _register(DeviceKey())

    dying = asyncio.create_task(dead.handle(command))
    await dead_outbox.delivering.wait()
    dying.cancel()  # the process is gone: no code of it runs again, the lease stays
    with pytest.raises(asyncio.CancelledError):
        await dying
    clock.now += LEASE

    await asyncio.wait_for(survivor.handle(command), 5)

    [delivery] = next_outbox.otps
    binding = await store.find_binding(str(command.challenge_id))
    assert binding is not None
    assert binding.challenge.otp_delivered
    assert _stored_digest(binding) == _digest(delivery.otp)


async def test_a_lease_that_never_ends_makes_the_command_retry_later(store: Store) -> None:
    clock = Clock()  # never advances: the holder's lease stays fresh
    holder_outbox = HeldOutbox()
    holder = _worker(store, holder_outbox, clock)
    waiter = _worker(store, FlakyOutbox(), clock, lease=timedelta(seconds=0.3))
    command = _register(DeviceKey())

    holding = asyncio.create_task(holder.handle(command))
    await holder_outbox.delivering.wait()
    with pytest.raises(StoreContention):
        await asyncio.wait_for(waiter.handle(command), 5)
    holder_outbox.release.set()
    await holding


async def test_a_worker_stalled_past_its_lease_loses_the_delivery_to_the_later_otp(
    store: Store,
) -> None:
    clock = Clock()
    stalled_outbox, next_outbox = HeldOutbox(), FlakyOutbox()
    stalled, survivor = _worker(store, stalled_outbox, clock), _worker(store, next_outbox, clock)
    command = _register(DeviceKey())

    stalling = asyncio.create_task(stalled.handle(command))
    await stalled_outbox.delivering.wait()
    clock.now += LEASE
    await survivor.handle(command)
    stalled_outbox.release.set()
    await stalling

    [late] = stalled_outbox.otps
    [later] = next_outbox.otps
    binding = await store.find_binding(str(command.challenge_id))
    assert binding is not None
    # The OTP drawn by the take-over is the valid one; the stalled worker's is void.
    assert _stored_digest(binding) == _digest(later.otp) != _digest(late.otp)
    assert binding.challenge.otp_delivered


async def test_a_failed_delivery_ends_the_lease_so_the_retry_need_not_wait(store: Store) -> None:
    clock = Clock()  # never advances: only the release lets the retry through at once
    outbox = FlakyOutbox()
    worker = _worker(store, outbox, clock)
    command = _register(DeviceKey())
    outbox.fail_once.add("otp")

    with pytest.raises(Exception, match="otp"):
        await worker.handle(command)
    await asyncio.wait_for(worker.handle(command), 1)

    [delivery] = outbox.otps
    binding = await store.find_binding(str(command.challenge_id))
    assert binding is not None
    assert _stored_digest(binding) == _digest(delivery.otp)
