"""Result events built with the real wire models, for tests of the events' consumers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from schemas.devices import KeyPurpose
from schemas.events import (
    CloudEvent,
    DeviceChallengeCreated,
    DeviceChallengeCreatedEvent,
    DeviceSignatureAttempt,
    EventType,
    KeyAdded,
    KeyAddedEvent,
    PersonLocked,
    PersonLockedEvent,
    SignatureAttempt,
)
from schemas.reasons import Reason
from schemas.signing import Money, Payee, Transaction, string_to_sign

_EPOCH = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def attempt_event(
    number: int,
    *,
    reason: Reason | None = Reason.INVALID_SIGNATURE,
    person_id: str = "person-1",
    device_id: uuid.UUID | None = None,
    decided_at: datetime | None = None,
) -> CloudEvent[SignatureAttempt]:
    """The ``number``-th attempt event of a test: distinct ids, times a second apart."""
    challenge_id = uuid.uuid5(uuid.NAMESPACE_OID, f"challenge-{number}")
    decided = decided_at or _EPOCH + timedelta(seconds=number)
    return CloudEvent[SignatureAttempt](
        id=str(uuid.uuid5(uuid.NAMESPACE_OID, f"event-{number}")),
        type=EventType.SIGNATURE_REJECTED if reason else EventType.SIGNATURE_VERIFIED,
        subject=str(challenge_id),
        time=decided,
        data=SignatureAttempt(
            challenge_id=challenge_id,
            device_id=device_id or uuid.uuid5(uuid.NAMESPACE_OID, f"device-{number}"),
            key_id=uuid.uuid5(uuid.NAMESPACE_OID, f"key-{number}"),
            person_id=person_id,
            client_id="bank-app-1",
            outcome="rejected" if reason else "verified",
            reason=reason,
            attempt=1,
            attempts_remaining=4 if reason else 5,
            device_data=None,
            signature="3045022100" + "ab" * 32 + "0220" + "cd" * 32,
            request_id=f"req-{number}",
            received_at=decided - timedelta(milliseconds=20),
            decided_at=decided,
        ),
    )


def attempt_event_json(number: int) -> bytes:
    return attempt_event(number).model_dump_json().encode()


# Device signing (SPEC §8): the four event types, built the same way, ids apart from the
# binding events' of the same number.


def _device_signing_ids(number: int) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """The ``number``-th device signing challenge, its device and the key that signs it."""
    return (
        uuid.uuid5(uuid.NAMESPACE_OID, f"device-challenge-{number}"),
        uuid.uuid5(uuid.NAMESPACE_OID, f"signing-device-{number}"),
        uuid.uuid5(uuid.NAMESPACE_OID, f"restricted-key-{number}"),
    )


def device_challenge_created_event(number: int) -> DeviceChallengeCreatedEvent:
    """The ``number``-th device signing challenge: a payment of 12.30 EUR."""
    challenge_id, device_id, key_id = _device_signing_ids(number)
    created = _EPOCH + timedelta(seconds=number)
    transaction = Transaction(
        amount=Money(value="12.30", currency="EUR"),
        payee=Payee(name="Stadtwerke Musterstadt", iban="DE89370400440532013000"),
    )
    return DeviceChallengeCreatedEvent(
        id=str(uuid.uuid5(uuid.NAMESPACE_OID, f"device-challenge-created-{number}")),
        type=EventType.DEVICE_CHALLENGE_CREATED,
        subject=str(challenge_id),
        time=created,
        data=DeviceChallengeCreated(
            challenge_id=challenge_id,
            device_id=device_id,
            key_id=key_id,
            key_purpose=KeyPurpose.RESTRICTED,
            person_id="person-1",
            client_id="bank-app-1",
            transaction=transaction,
            string_to_sign=string_to_sign(
                challenge_id=challenge_id,
                nonce=f"{number:064x}",
                created_at=created,
                expires_at=created + timedelta(minutes=5),
                transaction=transaction,
            ),
            device_data=None,
            request_id=f"req-open-{number}",
            created_at=created,
            expires_at=created + timedelta(minutes=5),
        ),
    )


def device_attempt_event(
    number: int,
    *,
    reason: Reason | None = Reason.INVALID_SIGNATURE,
    person_id: str = "person-1",
    device_id: uuid.UUID | None = None,
    decided_at: datetime | None = None,
) -> CloudEvent[DeviceSignatureAttempt]:
    """An attempt on the ``number``-th device signing challenge, as :func:`attempt_event`
    makes one on a binding challenge: ``device_signature_rejected`` (``reason`` None:
    ``device_signature_verified``)."""
    challenge_id, default_device_id, key_id = _device_signing_ids(number)
    decided = decided_at or _EPOCH + timedelta(seconds=number)
    return CloudEvent[DeviceSignatureAttempt](
        id=str(uuid.uuid5(uuid.NAMESPACE_OID, f"device-attempt-{number}")),
        type=(
            EventType.DEVICE_SIGNATURE_REJECTED if reason else EventType.DEVICE_SIGNATURE_VERIFIED
        ),
        subject=str(challenge_id),
        time=decided,
        data=DeviceSignatureAttempt(
            challenge_id=challenge_id,
            device_id=device_id or default_device_id,
            key_id=key_id,
            key_purpose=KeyPurpose.RESTRICTED,
            person_id=person_id,
            client_id="bank-app-1",
            outcome="rejected" if reason else "verified",
            reason=reason,
            attempt=1,
            attempts_remaining=4 if reason else 5,
            device_data=None,
            signature="3045022100" + "ef" * 32 + "0220" + "12" * 32,
            request_id=f"req-sign-{number}",
            received_at=decided - timedelta(milliseconds=20),
            decided_at=decided,
        ),
    )


def key_added_event(number: int) -> KeyAddedEvent:
    """The restricted key of the ``number``-th signing device added: keyed by the device."""
    _, device_id, key_id = _device_signing_ids(number)
    added = _EPOCH + timedelta(seconds=number)
    return KeyAddedEvent(
        id=str(uuid.uuid5(uuid.NAMESPACE_OID, f"key-added-{number}")),
        type=EventType.KEY_ADDED,
        subject=str(device_id),
        time=added,
        data=KeyAdded(
            device_id=device_id,
            key_id=key_id,
            key_purpose=KeyPurpose.RESTRICTED,
            signed_by_key_id=uuid.uuid5(uuid.NAMESPACE_OID, f"binding-key-{number}"),
            person_id="person-1",
            client_id="bank-app-1",
            request_id=f"req-add-key-{number}",
            added_at=added,
        ),
    )


def as_device_attempt(
    event: CloudEvent[SignatureAttempt], *, key_purpose: KeyPurpose = KeyPurpose.RESTRICTED
) -> CloudEvent[DeviceSignatureAttempt]:
    """``event``'s attempt made on a device signing challenge instead: same id, times and
    fields, typed ``device_signature_*``, with the signing key's purpose (None, as the worker
    says it, when the challenge is unknown: no device)."""
    rejected = event.type is EventType.SIGNATURE_REJECTED
    return CloudEvent[DeviceSignatureAttempt](
        id=event.id,
        type=EventType.DEVICE_SIGNATURE_REJECTED
        if rejected
        else EventType.DEVICE_SIGNATURE_VERIFIED,
        subject=event.subject,
        time=event.time,
        data=DeviceSignatureAttempt(
            **event.data.model_dump(),
            key_purpose=key_purpose if event.data.device_id is not None else None,
        ),
    )


def person_locked_event(
    number: int,
    *,
    person_id: str = "person-1",
    client_id: str = "bank-app-1",
    by_key_addition: bool = False,
    locked_at: datetime | None = None,
    lock: timedelta = timedelta(seconds=900),
) -> PersonLockedEvent:
    """The person locked (SPEC §9) by a failed signature on the ``number``-th device signing
    challenge, their 5th in a row; ``by_key_addition``: by one on a key added to that
    challenge's device, so no challenge. Keyed by the person as the worker keys it, and
    identified as it identifies it: by the person and when the lock starts."""
    challenge_id, device_id, _ = _device_signing_ids(number)
    locked = locked_at or _EPOCH + timedelta(seconds=number)
    subject = f"{client_id}/{person_id}"
    return PersonLockedEvent(
        id=str(uuid.uuid5(uuid.NAMESPACE_OID, f"person-locked-{subject}@{locked.isoformat()}")),
        type=EventType.PERSON_LOCKED,
        subject=subject,
        time=locked,
        data=PersonLocked(
            person_id=person_id,
            client_id=client_id,
            consecutive_failures=5,
            challenge_id=None if by_key_addition else challenge_id,
            device_id=device_id,
            request_id=f"req-{'add-key' if by_key_addition else 'sign'}-{number}",
            locked_at=locked,
            locked_until=locked + lock,
        ),
    )
