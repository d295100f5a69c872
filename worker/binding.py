"""The commands off the hot path, one at a time: registration, unbinding and the reads;
device signing's (opening a device challenge, adding a key) go to :mod:`worker.signing`.

What a registration stores is :mod:`worker.decisions.registrations`; its OTP's delivery,
:mod:`worker.otp_delivery`; what a device's owner may see, :mod:`worker.decisions.attempts`'s
``owns``.

Signature attempts are decided in batches elsewhere (:mod:`worker.handling`); these are
rarer, and registration needs its OTP delivered before it is recorded as delivered. Each
command is decided, the decision stored, and only then announced through the
:class:`Outbox` (events, OTP delivery, the reply to the waiting API replica), each awaited.
A command that is delivered again finds its decision stored and announces it again,
identically; it never decides twice.
"""

import asyncio
import logging
import uuid
from collections.abc import Awaitable
from datetime import timedelta

from sqlalchemy.exc import IntegrityError

from schemas.commands import (
    AddDeviceKey,
    Command,
    CommandHeader,
    GetChallenge,
    GetDevice,
    GetDeviceChallenge,
    ListDeviceKeys,
    ListDevices,
    OpenDeviceChallenge,
    RegisterDevice,
    UnbindDevice,
    VerifyDeviceSignature,
    VerifySignature,
)
from schemas.devices import MAX_BOUND_DEVICES_PER_PERSON, DeviceList, DeviceStatus
from schemas.reasons import Reason
from schemas.replies import Reply
from worker import events, views
from worker.answers import Answer, Clock, Outbox, limited, ok, rejected, utc_now
from worker.decisions.persons import (
    DEFAULT_OTP_SENDS_PER_HOUR,
    DEFAULT_PERSON_LOCK,
    MAX_PENDING_CHALLENGES,
)
from worker.decisions.registrations import binding_key, registers_as, registration_rows
from worker.errors import (
    StoreContention,
)
from worker.otp_delivery import DEFAULT_LEASE, OtpDeliveries, new_otp, otp_digest
from worker.otp_keyring import OtpKeyring
from worker.signing import SigningService
from worker.signing_store import SigningStore
from worker.store import Binding, Store
from worker.tables import DeviceRow

logger = logging.getLogger(__name__)


class BindingService:
    def __init__(
        self,
        store: Store,
        outbox: Outbox,
        *,
        keyring: OtpKeyring,
        challenge_ttl: timedelta,
        otp_delivery_lease: timedelta = DEFAULT_LEASE,
        clock: Clock = utc_now,
        otp_sends_per_hour: int = DEFAULT_OTP_SENDS_PER_HOUR,
        max_pending: int = MAX_PENDING_CHALLENGES,
        person_lock: timedelta = DEFAULT_PERSON_LOCK,
    ) -> None:
        self._store = store
        self._outbox = outbox
        self._ttl = challenge_ttl
        self._clock = clock
        self._otp_sends_per_hour = otp_sends_per_hour
        self._max_pending = max_pending
        self._keyring = keyring
        self._otps = OtpDeliveries(
            store, outbox, keyring=keyring, lease=otp_delivery_lease, clock=clock
        )
        self._signing = SigningService(
            SigningStore(store.engine),
            challenge_ttl=challenge_ttl,
            clock=clock,
            person_lock=person_lock,
        )

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
            case OpenDeviceChallenge():
                answer = await self._signing.open_challenge(command)
            case GetDeviceChallenge():
                answer = await self._signing.get_challenge(command)
            case ListDeviceKeys():
                answer = await self._signing.list_keys(command)
            case AddDeviceKey():
                answer = await self._signing.add_key(command)
            case VerifySignature() | VerifyDeviceSignature():
                raise TypeError("signature attempts are decided in batches (worker.handling)")
        await self._send(command, answer, reply_partition)

    # Registration

    async def register(self, command: RegisterDevice) -> Answer:
        replayed = await self._store.find_registration(str(command.command_id))
        if replayed is not None:
            # The same command again: redelivered, or a retry under the same Idempotency-Key.
            if not registers_as(replayed.device, command):
                return rejected(Reason.IDEMPOTENCY_KEY_REUSED)
            return await self._announce_registration(command, replayed, delivery=None)
        now = self._clock()
        otp, claim = new_otp(), uuid.uuid4().hex
        # Sealed before it goes anywhere near the database (SPEC §9).
        sealed = self._keyring.seal(str(command.challenge_id), otp_digest(otp))
        device, challenge = registration_rows(
            command, now=now, ttl=self._ttl, digest=sealed, claim=claim
        )
        try:
            refused = await self._store.register(
                device,
                challenge,
                binding_key(device),
                max_bound=MAX_BOUND_DEVICES_PER_PERSON,
                otp_sends_per_hour=self._otp_sends_per_hour,
                max_pending=self._max_pending,
            )
        except IntegrityError:
            # The same command, delivered twice at once: the other copy won.
            raise StoreContention("registration inserted concurrently") from None
        if refused is not None:
            return limited(refused)
        return await self._announce_registration(
            command, Binding(challenge=challenge, device=device), delivery=(otp, claim)
        )

    async def _announce_registration(
        self, command: RegisterDevice, binding: Binding, *, delivery: tuple[str, str] | None
    ) -> Answer:
        """Deliver the OTP if it is ours to deliver, then announce. ``delivery`` is the OTP and
        the lease of a challenge just stored; None for a replay, which takes the delivery
        over only if it never happened and nobody else is doing it."""
        await self._otps.deliver(binding, command.registration.language, delivery)
        challenge = binding.challenge
        created = events.challenge_created(binding, request_id=binding.device.created_by_request)
        return ok(views.device_registered(binding), event=(challenge.id, created.model_dump_json()))

    # Devices and reads

    async def unbind(self, command: UnbindDevice) -> Answer:
        device_id, command_id = str(command.device_id), str(command.command_id)
        device = await self._store.find_device(device_id)
        if device is None or device.client_id != command.client_id:
            return rejected(Reason.NOT_FOUND)
        if device.status != DeviceStatus.UNBOUND:
            await self._store.unbind(
                device_id, command_id=command_id, request_id=command.request_id, now=self._clock()
            )
            device = await self._store.find_device(device_id)
        # Unbound by this very command (now, or before a redelivery), or else by another one
        # earlier, in which case the device no longer exists for the client.
        if device is None or device.unbound_by_command != command_id or device.unbound_at is None:
            return rejected(Reason.NOT_FOUND)
        challenge = await self._store.challenge_of(device_id)
        if challenge is None:
            raise StoreContention(f"device {device_id} has no challenge")
        unbound = events.device_unbound(
            device, challenge_id=challenge.id, unbound_at=device.unbound_at
        )
        return ok(None, event=(challenge.id, unbound.model_dump_json()))

    async def get_challenge(self, command: GetChallenge) -> Answer:
        binding = await self._store.find_binding(str(command.challenge_id))
        if binding is None or not self._owns(command, binding.device):
            return rejected(Reason.NOT_FOUND)
        return ok(views.challenge_view(binding, self._clock()))

    async def get_device(self, command: GetDevice) -> Answer:
        device = await self._store.find_device(str(command.device_id))
        if device is None or not self._owns(command, device):
            return rejected(Reason.NOT_FOUND)
        return ok(views.device_view(device))

    async def list_devices(self, command: ListDevices) -> Answer:
        devices = await self._store.list_bound(command.client_id, command.person_id)
        return ok(DeviceList(data=[views.device_view(d) for d in devices]))

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
        for extra in answer.extra_events:  # a person_locked event
            announcements.append(await self._outbox.event(*extra))
        if command.reply_to is not None:  # None: a producer other than the API, nobody waits
            reply = Reply(
                command_id=command.command_id,
                reply_to=command.reply_to,
                outcome=answer.outcome,
                body=answer.body,
                reason=answer.reason,
                retry_after_seconds=answer.retry_after_seconds,
                locked_until=answer.locked_until,
            )
            announcements.append(await self._outbox.reply(reply, reply_partition))
        await asyncio.gather(*announcements)
