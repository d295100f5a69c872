"""The commands off the hot path, one at a time: registration, unbinding and the reads.

Signature attempts are decided in batches elsewhere (:mod:`worker.handling`); these are
rarer, and registration needs its OTP delivered before it is recorded as delivered. Each
command is decided, the decision stored, and only then announced through the
:class:`Outbox` (events, OTP delivery, the reply to the waiting API replica), each awaited.
A command that is delivered again finds its decision stored and announces it again,
identically; it never decides twice.
"""

import asyncio
import contextlib
import hashlib
import logging
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

from pydantic import JsonValue
from sqlalchemy.exc import IntegrityError

from schemas.challenges import ChallengeStatus
from schemas.commands import (
    Command,
    CommandHeader,
    GetChallenge,
    GetDevice,
    ListDevices,
    RegisterDevice,
    UnbindDevice,
    VerifySignature,
)
from schemas.devices import MAX_BOUND_DEVICES_PER_PERSON, DeviceList, DeviceStatus
from schemas.model import WireModel
from schemas.otp import OtpDelivery
from schemas.reasons import Reason
from schemas.replies import Reply
from worker import events, views
from worker.errors import (
    StoreContention,
)
from worker.store import Binding, Store
from worker.tables import ChallengeRow, DeviceRow

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
# An event to publish: its Kafka key and its CloudEvent JSON.
Event = tuple[str, str]

# How long a worker delivering a challenge's OTP holds it before another may take it for
# lost and send a new one (see BindingService._take_over_otp_delivery). Longer than a
# delivery takes under load, shorter than a crashed worker's partitions take to move on.
DEFAULT_OTP_DELIVERY_LEASE = timedelta(seconds=10)
_LEASE_POLL_SECONDS = 0.05


class Outbox(Protocol):
    """Where decisions are announced (:class:`worker.outbox.KafkaOutbox`)."""

    async def event(self, key: str, event_json: str) -> Awaitable[object]:
        """Hand an event over; the result is awaited for its acknowledgement."""
        ...

    async def reply(self, reply: Reply, partition: int | None) -> Awaitable[object]: ...

    async def deliver_otp(self, delivery: OtpDelivery) -> None:
        """Returns once Kafka has the OTP."""
        ...


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_otp() -> str:
    """Six digits from the CSPRNG, leading zeros kept."""
    return f"{secrets.randbelow(1_000_000):06d}"


def otp_digest(otp: str) -> bytes:
    return hashlib.sha256(otp.encode("ascii")).digest()


def _registers_as(device: DeviceRow, command: RegisterDevice) -> bool:
    """Whether ``device`` is what ``command`` registers (language and OTP aside)."""
    body = command.registration
    return (
        device.client_id,
        device.person_id,
        device.public_key,
        device.key_purpose,
        device.name,
        device.device_data,
    ) == (
        command.client_id,
        body.person_id,
        body.key,
        body.key_purpose.value,
        body.name,
        body.device_data,
    )


@dataclass(frozen=True, slots=True)
class Answer:
    """What a command is answered with (the reply) and announced with (its event, if any)."""

    outcome: Literal["ok", "rejected"]
    body: JsonValue = None
    reason: Reason | None = None
    event: Event | None = None


def _ok(body: WireModel | None, *, event: Event | None = None) -> Answer:
    payload: JsonValue = body.model_dump(mode="json") if body is not None else None
    return Answer("ok", body=payload, event=event)


def _rejected(reason: Reason) -> Answer:
    return Answer("rejected", reason=reason)


class BindingService:
    def __init__(
        self,
        store: Store,
        outbox: Outbox,
        *,
        challenge_ttl: timedelta,
        otp_delivery_lease: timedelta = DEFAULT_OTP_DELIVERY_LEASE,
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._outbox = outbox
        self._ttl = challenge_ttl
        self._lease = otp_delivery_lease
        self._clock = clock

    async def handle(self, command: Command, *, reply_partition: int | None = None) -> None:
        """Decide, store, announce ``command``; returns once Kafka has every announcement.
        The reply goes to ``reply_partition`` of the replies topic (None: by its key)."""
        match command:
            case RegisterDevice():
                answer = await self.register(command)
            case UnbindDevice():
                answer = await self.unbind(command)
            case GetChallenge():
                answer = await self.get_challenge(command)
            case GetDevice():
                answer = await self.get_device(command)
            case ListDevices():
                answer = await self.list_devices(command)
            case VerifySignature():
                raise TypeError("signature attempts are decided in batches (worker.handling)")
        await self._send(command, answer, reply_partition)

    # Registration

    async def register(self, command: RegisterDevice) -> Answer:
        replayed = await self._store.find_registration(str(command.command_id))
        if replayed is not None:
            # The same command again: redelivered, or a retry under the same Idempotency-Key.
            if not _registers_as(replayed.device, command):
                return _rejected(Reason.IDEMPOTENCY_KEY_REUSED)
            return await self._announce_registration(command, replayed, delivery=None)
        now = self._clock()
        otp = new_otp()
        claim = uuid.uuid4().hex
        body = command.registration
        device = DeviceRow(
            id=str(command.device_id),
            key_id=str(command.key_id),
            client_id=command.client_id,
            person_id=body.person_id,
            name=body.name,
            key_purpose=body.key_purpose.value,
            public_key=body.key,
            status=DeviceStatus.PENDING.value,
            device_data=body.device_data,
            created_at=now,
            created_by_command=str(command.command_id),
            created_by_request=command.request_id,
        )
        challenge = ChallengeRow(
            id=str(command.challenge_id),
            device_id=device.id,
            status=ChallengeStatus.PENDING.value,
            otp_digest=otp_digest(otp),
            otp_delivered=False,
            # This worker delivers the OTP; the lease keeps another from replacing it.
            otp_delivery_claim=claim,
            otp_delivery_claimed_at=now,
            failed_attempts=0,
            created_at=now,
            expires_at=now + self._ttl,
        )
        try:
            registered = await self._store.register(
                device, challenge, max_bound=MAX_BOUND_DEVICES_PER_PERSON
            )
        except IntegrityError:
            # The same command, delivered twice at once: the other copy won.
            raise StoreContention("registration inserted concurrently") from None
        if not registered:
            return _rejected(Reason.DEVICE_LIMIT_REACHED)
        return await self._announce_registration(
            command, Binding(challenge=challenge, device=device), delivery=(otp, claim)
        )

    async def _announce_registration(
        self, command: RegisterDevice, binding: Binding, *, delivery: tuple[str, str] | None
    ) -> Answer:
        """Deliver the OTP if it is ours to deliver, then announce. ``delivery`` is the OTP and
        the lease of a challenge just stored; None for a replay, which takes the delivery
        over only if it never happened and nobody else is doing it."""
        challenge = binding.challenge
        if (
            delivery is None
            and challenge.status == ChallengeStatus.PENDING
            and not challenge.otp_delivered
        ):
            delivery = await self._take_over_otp_delivery(challenge.id)
        if delivery is not None:
            otp, claim = delivery
            try:
                await self._outbox.deliver_otp(
                    OtpDelivery(
                        challenge_id=uuid.UUID(challenge.id),
                        person_id=binding.device.person_id,
                        otp=otp,
                        language=command.registration.language,
                        expires_at=challenge.expires_at,
                    )
                )
            except Exception:
                # Not delivered (as far as this worker knows): the retry need not wait out
                # the lease. Best effort; an expired lease ends it too.
                with contextlib.suppress(Exception):
                    await self._store.release_otp_claim(challenge.id, claim)
                raise
            if not await self._store.mark_otp_delivered(challenge.id, claim):
                # This worker stalled past its lease and another one delivered a new OTP:
                # the person has two, and only the later one is valid.
                logger.warning("OTP delivery of challenge %s was taken over", challenge.id)
        created = events.challenge_created(binding, request_id=binding.device.created_by_request)
        return _ok(
            views.device_registered(binding), event=(challenge.id, created.model_dump_json())
        )

    async def _take_over_otp_delivery(self, challenge_id: str) -> tuple[str, str] | None:
        """A fresh OTP and lease for a stored challenge whose OTP never reached Kafka, or
        None when it did (or the challenge left pending).

        The OTP lives only in the memory of the worker that drew it. When its delivery is
        not recorded, either that worker is still at it (the command moved to this worker in
        a rebalance) or it died first. While its lease is fresh this waits for it; replacing
        the OTP would send the person a second one and void the first. Once the lease has
        expired the OTP is taken for lost and replaced.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._lease.total_seconds()
        waited = False
        while True:
            binding = await self._store.find_binding(challenge_id)
            if binding is None:
                raise StoreContention(f"challenge {challenge_id} vanished")
            challenge = binding.challenge
            if challenge.status != ChallengeStatus.PENDING or challenge.otp_delivered:
                return None
            now = self._clock()
            claimed_at = challenge.otp_delivery_claimed_at
            if claimed_at is None or now - claimed_at >= self._lease:
                otp, claim = new_otp(), uuid.uuid4().hex
                if await self._store.claim_otp_delivery(
                    challenge_id,
                    digest=otp_digest(otp),
                    claim=claim,
                    now=now,
                    previous_claim=challenge.otp_delivery_claim,
                ):
                    return otp, claim
                continue  # claimed or delivered meanwhile: read again
            if loop.time() >= deadline:
                # The lease holder neither finished nor let its lease lapse (by this worker's
                # clock): retry the command later as a transient failure.
                raise StoreContention(f"OTP of challenge {challenge_id} is being delivered")
            if not waited:
                waited = True
                logger.info("waiting for another worker's OTP delivery of %s", challenge_id)
            await asyncio.sleep(_LEASE_POLL_SECONDS)

    # Devices and reads

    async def unbind(self, command: UnbindDevice) -> Answer:
        device_id, command_id = str(command.device_id), str(command.command_id)
        device = await self._store.find_device(device_id)
        if device is None or device.client_id != command.client_id:
            return _rejected(Reason.NOT_FOUND)
        if device.status != DeviceStatus.UNBOUND:
            await self._store.unbind(
                device_id, command_id=command_id, request_id=command.request_id, now=self._clock()
            )
            device = await self._store.find_device(device_id)
        # Unbound by this very command (now, or before a redelivery), or else by another one
        # earlier, in which case the device no longer exists for the client.
        if device is None or device.unbound_by_command != command_id or device.unbound_at is None:
            return _rejected(Reason.NOT_FOUND)
        challenge = await self._store.challenge_of(device_id)
        if challenge is None:
            raise StoreContention(f"device {device_id} has no challenge")
        unbound = events.device_unbound(
            device, challenge_id=challenge.id, unbound_at=device.unbound_at
        )
        return _ok(None, event=(challenge.id, unbound.model_dump_json()))

    async def get_challenge(self, command: GetChallenge) -> Answer:
        binding = await self._store.find_binding(str(command.challenge_id))
        if binding is None or not self._owns(command, binding.device):
            return _rejected(Reason.NOT_FOUND)
        return _ok(views.challenge_view(binding, self._clock()))

    async def get_device(self, command: GetDevice) -> Answer:
        device = await self._store.find_device(str(command.device_id))
        if device is None or not self._owns(command, device):
            return _rejected(Reason.NOT_FOUND)
        return _ok(views.device_view(device))

    async def list_devices(self, command: ListDevices) -> Answer:
        devices = await self._store.list_bound(command.client_id, command.person_id)
        return _ok(DeviceList(data=[views.device_view(d) for d in devices]))

    # Replies

    @staticmethod
    def _owns(command: CommandHeader, device: DeviceRow) -> bool:
        # Another client's device, or an unbound one, is answered exactly like a missing one.
        return device.client_id == command.client_id and device.status != DeviceStatus.UNBOUND

    async def _send(
        self, command: CommandHeader, answer: Answer, reply_partition: int | None
    ) -> None:
        """Publish the answer's event and the reply together, and wait for both.

        The decision is stored already, so the reply may reach the API before the event is
        acknowledged: if the event then fails, the command is retried and publishes both
        again, identically.
        """
        announcements: list[Awaitable[object]] = []
        if answer.event is not None:
            announcements.append(await self._outbox.event(*answer.event))
        if command.reply_to is not None:  # None: a producer other than the API, nobody waits
            reply = Reply(
                command_id=command.command_id,
                reply_to=command.reply_to,
                outcome=answer.outcome,
                body=answer.body,
                reason=answer.reason,
            )
            announcements.append(await self._outbox.reply(reply, reply_partition))
        await asyncio.gather(*announcements)
