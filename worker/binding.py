"""The device-binding decisions: one method per command, independent of Kafka.

Each command is decided, the decision stored, and only then announced through the
:class:`Outbox` (events, OTP delivery, the reply to the waiting API replica). A command that
is delivered again finds its decision stored and announces it again, identically; it never
decides twice. An invalid signature is a normal outcome with its event, not an exception.
"""

import asyncio
import contextlib
import hashlib
import logging
import secrets
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol, TypedDict

from pydantic import JsonValue
from sqlalchemy.exc import IntegrityError

from schemas.challenges import MAX_FAILED_ATTEMPTS, ChallengeStatus
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
    InvalidPublicKey,
    SignatureRejected,
    StoreContention,
)
from worker.keys import PublicKeys
from worker.metrics import VERIFICATION_OUTCOMES
from worker.store import AttemptBatch, Binding, Store
from worker.tables import AttemptRow, ChallengeRow, DeviceRow, RefusalRow
from worker.verify import verify_digest

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
# An event to publish: its Kafka key and its CloudEvent JSON.
Event = tuple[str, str]

# How long a worker delivering a challenge's OTP holds it before another may take it for
# lost and send a new one (see BindingService._take_over_otp_delivery). Longer than a
# delivery takes under load, shorter than a crashed worker's partitions take to move on.
DEFAULT_OTP_DELIVERY_LEASE = timedelta(seconds=10)
_LEASE_POLL_SECONDS = 0.05

_TERMINAL_REASON = {
    ChallengeStatus.VERIFIED: Reason.CHALLENGE_ALREADY_VERIFIED,
    ChallengeStatus.EXPIRED: Reason.CHALLENGE_EXPIRED,
    ChallengeStatus.LOCKED: Reason.CHALLENGE_LOCKED,
}


class Outbox(Protocol):
    """Where decisions are announced. Each call returns once Kafka has the message."""

    async def publish_event(self, key: str, event_json: str) -> None: ...

    async def deliver_otp(self, delivery: OtpDelivery) -> None: ...

    async def reply(self, reply: Reply) -> None: ...


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


class _Decision(TypedDict):
    """How one decided attempt is announced (the arguments of ``BindingService._send``)."""

    event: Event
    outcome: Literal["ok", "rejected"]
    reason: Reason | None
    attempts_remaining: int | None


def _approval(event: Event) -> _Decision:
    return _Decision(event=event, outcome="ok", reason=None, attempts_remaining=None)


def _rejection(reason: Reason, event: Event) -> _Decision:
    return _Decision(event=event, outcome="rejected", reason=reason, attempts_remaining=None)


def _invalid_signature(remaining: int, event: Event) -> _Decision:
    """An invalid signature, with the attempts that remain."""
    return _Decision(
        event=event,
        outcome="rejected",
        reason=Reason.INVALID_SIGNATURE,
        attempts_remaining=remaining,
    )


def _attempt_row(
    command: VerifySignature, event_json: str, number: int, now: datetime, outcome: str
) -> AttemptRow:
    return AttemptRow(
        challenge_id=str(command.challenge_id),
        signature=command.signature,
        outcome=outcome,
        number=number,
        event_json=event_json,
        decided_at=now,
    )


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
        self._keys = PublicKeys()

    async def handle(self, command: Command) -> None:
        match command:
            case RegisterDevice():
                await self.register(command)
            case VerifySignature():
                await self.verify(command)
            case UnbindDevice():
                await self.unbind(command)
            case GetChallenge():
                await self.get_challenge(command)
            case GetDevice():
                await self.get_device(command)
            case ListDevices():
                await self.list_devices(command)

    # Registration

    async def register(self, command: RegisterDevice) -> None:
        replayed = await self._store.find_registration(str(command.command_id))
        if replayed is not None:
            # The same command again: redelivered, or a retry under the same Idempotency-Key.
            if not _registers_as(replayed.device, command):
                await self._reject(command, Reason.IDEMPOTENCY_KEY_REUSED)
                return
            await self._announce_registration(command, replayed, delivery=None)
            return
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
            await self._reject(command, Reason.DEVICE_LIMIT_REACHED)
            return
        await self._announce_registration(
            command, Binding(challenge=challenge, device=device), delivery=(otp, claim)
        )

    async def _announce_registration(
        self, command: RegisterDevice, binding: Binding, *, delivery: tuple[str, str] | None
    ) -> None:
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
        await self._ok(
            command,
            views.device_registered(binding),
            event=(challenge.id, created.model_dump_json()),
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

    # Verification

    async def verify(self, command: VerifySignature) -> None:
        await self.verify_all([command])

    async def verify_all(self, commands: Sequence[VerifySignature]) -> None:
        """Decide a batch of attempts in one transaction, in order, then announce them all.

        Commands of one challenge arrive in order on one partition, and the batch decides
        them in that order, each seeing what the previous ones stored. Every decision is
        stored before any is announced; a redelivered batch finds them and announces the
        same events again.
        """
        now = self._clock()
        decisions = await self._store.decide_attempts(
            {str(c.challenge_id) for c in commands},
            {str(c.command_id) for c in commands},
            lambda batch: [self._decide_attempt(batch, command, now) for command in commands],
        )
        announcements = zip(commands, decisions, strict=True)
        await asyncio.gather(
            *(self._send(command, **decision) for command, decision in announcements)
        )

    def _decide_attempt(
        self, batch: AttemptBatch, command: VerifySignature, now: datetime
    ) -> _Decision:
        """One attempt, decided on the batch's locked rows, which it changes in place."""
        challenge_id = str(command.challenge_id)
        binding = batch.bindings.get(challenge_id)
        if binding is None or not self._owns(command, binding.device):
            return self._refuse(batch, command, None, Reason.NOT_FOUND, now)
        refusal = batch.refusals.get(str(command.command_id))
        if refusal is not None:
            # Redelivered: this command was refused already; that decision stands even if the
            # challenge changed since (a device slot freed, say).
            return _rejection(Reason(refusal.reason), (challenge_id, refusal.event_json))
        prior = batch.attempts.get((challenge_id, command.signature))
        if prior is not None:
            # The same signature again: the stored outcome, and the original event once more.
            original = (prior.challenge_id, prior.event_json)
            if prior.outcome == "verified":
                return _approval(original)
            remaining = views.attempts_remaining(binding.challenge)
            return _invalid_signature(remaining, original)

        challenge = binding.challenge
        status = views.effective_status(challenge, now)
        if status is ChallengeStatus.EXPIRED and challenge.status == ChallengeStatus.PENDING:
            batch.close(challenge, ChallengeStatus.EXPIRED, now)
        if status is not ChallengeStatus.PENDING:
            return self._refuse(batch, command, binding, _TERMINAL_REASON[status], now)
        if challenge.otp_digest is None:  # a pending challenge always has one
            raise StoreContention(f"pending challenge {challenge_id} without an OTP")

        number = challenge.failed_attempts + 1
        try:
            verify_digest(
                public_key=self._keys.load(binding.device.public_key),
                digest=challenge.otp_digest,
                signature_hex=command.signature,
            )
        except (SignatureRejected, InvalidPublicKey):
            # A stored key was checked at registration; were it unusable all the same, no
            # signature could verify against it, which is what this outcome says.
            remaining = MAX_FAILED_ATTEMPTS - number
            event = events.signature_attempt(
                command,
                binding,
                reason=Reason.INVALID_SIGNATURE,
                attempt=number,
                attempts_remaining=remaining,
                decided_at=now,
            )
            attempt = _attempt_row(command, event.model_dump_json(), number, now, "rejected")
            batch.add_attempt(attempt)
            batch.count_failure(challenge, number)
            if number >= MAX_FAILED_ATTEMPTS:
                batch.close(challenge, ChallengeStatus.LOCKED, now)
            return _invalid_signature(remaining, (challenge_id, attempt.event_json))

        if batch.bound_devices_of(binding.device) >= MAX_BOUND_DEVICES_PER_PERSON:
            # The challenge stays pending: once another device is unbound, it can bind.
            return self._refuse(batch, command, binding, Reason.DEVICE_LIMIT_REACHED, now)
        event = events.signature_attempt(
            command,
            binding,
            reason=None,
            attempt=number,
            attempts_remaining=MAX_FAILED_ATTEMPTS - challenge.failed_attempts,
            decided_at=now,
        )
        attempt = _attempt_row(command, event.model_dump_json(), number, now, "verified")
        batch.add_attempt(attempt)
        batch.close(challenge, ChallengeStatus.VERIFIED, now)
        batch.bind(binding.device, now)
        return _approval((challenge_id, attempt.event_json))

    @staticmethod
    def _refuse(
        batch: AttemptBatch,
        command: VerifySignature,
        binding: Binding | None,
        reason: Reason,
        now: datetime,
    ) -> _Decision:
        """A refusal that counts no attempt (unknown, expired, locked, already verified, device
        limit). Stored, so that a redelivery publishes this very event again; a refusal
        stored for the command before stands instead."""
        refusal = batch.refusals.get(str(command.command_id))
        if refusal is None:
            remaining = views.attempts_remaining(binding.challenge) if binding else None
            event = events.signature_attempt(
                command,
                binding,
                reason=reason,
                attempt=None,
                attempts_remaining=remaining,
                decided_at=now,
            )
            refusal = RefusalRow(
                command_id=str(command.command_id),
                challenge_id=str(command.challenge_id),
                reason=reason,
                event_json=event.model_dump_json(),
                decided_at=now,
            )
            batch.add_refusal(refusal)
        return _rejection(Reason(refusal.reason), (refusal.challenge_id, refusal.event_json))

    # Devices and reads

    async def unbind(self, command: UnbindDevice) -> None:
        device_id, command_id = str(command.device_id), str(command.command_id)
        device = await self._store.find_device(device_id)
        if device is None or device.client_id != command.client_id:
            await self._reject(command, Reason.NOT_FOUND)
            return
        if device.status != DeviceStatus.UNBOUND:
            await self._store.unbind(
                device_id, command_id=command_id, request_id=command.request_id, now=self._clock()
            )
            device = await self._store.find_device(device_id)
        # Unbound by this very command (now, or before a redelivery), or else by another one
        # earlier, in which case the device no longer exists for the client.
        if device is None or device.unbound_by_command != command_id or device.unbound_at is None:
            await self._reject(command, Reason.NOT_FOUND)
            return
        challenge = await self._store.challenge_of(device_id)
        if challenge is None:
            raise StoreContention(f"device {device_id} has no challenge")
        unbound = events.device_unbound(
            device, challenge_id=challenge.id, unbound_at=device.unbound_at
        )
        await self._ok(command, None, event=(challenge.id, unbound.model_dump_json()))

    async def get_challenge(self, command: GetChallenge) -> None:
        binding = await self._store.find_binding(str(command.challenge_id))
        if binding is None or not self._owns(command, binding.device):
            await self._reject(command, Reason.NOT_FOUND)
            return
        await self._ok(command, views.challenge_view(binding, self._clock()))

    async def get_device(self, command: GetDevice) -> None:
        device = await self._store.find_device(str(command.device_id))
        if device is None or not self._owns(command, device):
            await self._reject(command, Reason.NOT_FOUND)
            return
        await self._ok(command, views.device_view(device))

    async def list_devices(self, command: ListDevices) -> None:
        devices = await self._store.list_bound(command.client_id, command.person_id)
        await self._ok(command, DeviceList(data=[views.device_view(d) for d in devices]))

    # Replies

    @staticmethod
    def _owns(command: CommandHeader, device: DeviceRow) -> bool:
        # Another client's device, or an unbound one, is answered exactly like a missing one.
        return device.client_id == command.client_id and device.status != DeviceStatus.UNBOUND

    async def _ok(
        self, command: CommandHeader, body: WireModel | None, *, event: Event | None = None
    ) -> None:
        payload: JsonValue = body.model_dump(mode="json") if body is not None else None
        await self._send(command, event, outcome="ok", body=payload)

    async def _reject(
        self, command: CommandHeader, reason: Reason, *, event: Event | None = None
    ) -> None:
        await self._send(command, event, outcome="rejected", reason=reason)

    async def _send(
        self,
        command: CommandHeader,
        event: Event | None,
        *,
        outcome: Literal["ok", "rejected"],
        body: JsonValue = None,
        reason: Reason | None = None,
        attempts_remaining: int | None = None,
    ) -> None:
        """Publish the decision's event and the reply together, and wait for both.

        The decision is stored already, so the reply may reach the API before the event is
        acknowledged: if the event then fails, the command is retried and publishes both
        again, identically.
        """
        announcements: list[Awaitable[None]] = []
        if event is not None:
            announcements.append(self._outbox.publish_event(*event))
        if command.reply_to is not None:  # None: a producer other than the API, nobody waits
            reply = Reply(
                command_id=command.command_id,
                reply_to=command.reply_to,
                outcome=outcome,
                body=body,
                reason=reason,
                attempts_remaining=attempts_remaining,
            )
            announcements.append(self._outbox.reply(reply))
        await asyncio.gather(*announcements)
        if isinstance(command, VerifySignature):
            VERIFICATION_OUTCOMES.labels(
                "verified" if outcome == "ok" else "rejected", reason or "none"
            ).inc()
