"""Device signing's commands off the hot path, one at a time (SPEC §8): opening a device
challenge, reading one, listing a device's keys, adding a key.

What each decides is :mod:`worker.decisions.signing`; the rows are kept by
:class:`~worker.signing_store.SigningStore`. As for registration, a command delivered again
finds what it stored (by its command id) and is answered and announced identically.
Signatures on device challenges are decided in batches with the binding attempts
(:mod:`worker.handling`).
"""

import secrets
from datetime import timedelta

from sqlalchemy.exc import IntegrityError

from schemas.commands import AddDeviceKey, GetDeviceChallenge, ListDeviceKeys, OpenDeviceChallenge
from schemas.reasons import Reason
from schemas.signing import NONCE_BYTES, KeyAdded
from worker import events, views
from worker.answers import Answer, Clock, limited, ok, rejected
from worker.decisions.persons import DEFAULT_PERSON_LOCK, locked
from worker.decisions.signing import (
    Refused,
    added_key,
    by_purpose,
    chosen_key,
    device_challenge_row,
    opens_as,
    same_key,
    visible,
)
from worker.errors import InvalidPublicKey, SignatureRejected, StoreContention
from worker.signing_store import SigningStore
from worker.tables import DeviceChallengeRow, DeviceKeyRow, DeviceRow
from worker.verify import verify_message


def key_signs(public_key_hex: str, message: bytes, signature_hex: str) -> bool:
    """Whether the key (hex of its SEC1 point) signed ``message`` (SHA-256 once, §2)."""
    try:
        verify_message(
            public_key=bytes.fromhex(public_key_hex), message=message, signature_hex=signature_hex
        )
    except (SignatureRejected, InvalidPublicKey):
        return False
    return True


class SigningService:
    def __init__(
        self,
        store: SigningStore,
        *,
        challenge_ttl: timedelta,
        clock: Clock,
        person_lock: timedelta = DEFAULT_PERSON_LOCK,
    ) -> None:
        self._store = store
        self._ttl = challenge_ttl
        self._clock = clock
        self._person_lock = person_lock

    async def open_challenge(self, command: OpenDeviceChallenge) -> Answer:
        replayed = await self._store.challenge_opened_by(str(command.command_id))
        if replayed is not None:
            if not opens_as(replayed, command):
                # The same Idempotency-Key with another body.
                return rejected(Reason.IDEMPOTENCY_KEY_REUSED)
            device, _ = await self._store.device_and_keys(replayed.device_id)
            if device is None:
                raise StoreContention(f"challenge {replayed.id} has no device")
            return _opened(replayed, device)
        device, keys = await self._store.device_and_keys(str(command.device_id))
        device = visible(device, command.client_id)
        if device is None:
            return rejected(Reason.NOT_FOUND)
        now = self._clock()
        lock = locked(await self._store.person(device.client_id, device.person_id), now)
        if lock is not None:
            return limited(lock)
        key = chosen_key(by_purpose(keys), command)
        if isinstance(key, Refused):
            return rejected(key.reason)
        challenge = device_challenge_row(
            command,
            key,
            now=now,
            ttl=self._ttl,
            nonce=secrets.token_hex(NONCE_BYTES),
        )
        if not await self._store.insert_while_bound(challenge):
            return rejected(Reason.NOT_FOUND)  # unbound meanwhile
        return _opened(challenge, device)

    async def get_challenge(self, command: GetDeviceChallenge) -> Answer:
        found = await self._store.device_challenge(str(command.challenge_id))
        if found is None or visible(found.device, command.client_id) is None:
            return rejected(Reason.NOT_FOUND)
        return ok(views.device_challenge_view(found.challenge, self._clock()))

    async def list_keys(self, command: ListDeviceKeys) -> Answer:
        device, keys = await self._store.device_and_keys(str(command.device_id))
        if visible(device, command.client_id) is None:
            return rejected(Reason.NOT_FOUND)
        return ok(views.device_keys(str(command.device_id), keys))

    async def add_key(self, command: AddDeviceKey) -> Answer:
        replayed = await self._store.key_added_by(str(command.command_id))
        device, keys = await self._store.device_and_keys(str(command.device_id))
        if replayed is not None:
            # Redelivered, or retried under its Idempotency-Key (with another body: refused).
            if device is None or not same_key(replayed, command):
                return rejected(Reason.IDEMPOTENCY_KEY_REUSED)
            return _added(replayed, device)
        device = visible(device, command.client_id)
        if device is None:
            return rejected(Reason.NOT_FOUND)
        now = self._clock()
        key = added_key(command, by_purpose(keys), now=now, verifies=key_signs)
        if isinstance(key, Refused) and key.reason is Reason.INVALID_SIGNATURE:
            lock = await self._store.key_failures.count(
                device,
                command_id=str(command.command_id),
                now=now,
                lock_for=self._person_lock,
                lock_event=lambda failures, at, until: events.person_locked(
                    command, device, failures=failures, locked_at=at, locked_until=until
                ),
            )
            return rejected(key.reason, extra_events=_person_events(device, lock))
        if isinstance(key, Refused):
            return rejected(key.reason)
        try:
            inserted = await self._store.insert_while_bound(key)
        except IntegrityError:
            # The purpose was taken meanwhile (by a command redelivered elsewhere, or a
            # concurrent one): decided again, the replay or the refusal is found.
            raise StoreContention("key inserted concurrently") from None
        if not inserted:
            return rejected(Reason.NOT_FOUND)
        await self._store.key_failures.reset(device.client_id, device.person_id)
        return _added(key, device)


def _person_events(device: DeviceRow, lock_json: str | None) -> tuple[tuple[str, str], ...]:
    if lock_json is None:
        return ()
    return ((events.person_key(device.client_id, device.person_id), lock_json),)


def _opened(challenge: DeviceChallengeRow, device: DeviceRow) -> Answer:
    created = events.device_challenge_created(challenge, device)
    return ok(
        views.device_challenge_opened(challenge), event=(challenge.id, created.model_dump_json())
    )


def _added(key: DeviceKeyRow, device: DeviceRow) -> Answer:
    event = events.key_added(key, device)
    return ok(KeyAdded(id=event.data.key_id), event=(device.id, event.model_dump_json()))
