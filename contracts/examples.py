"""One example of every event, built from the real models with fixed values: the v1
examples in ``contracts/examples/v1`` (written once, then frozen; see ``python -m contracts``)."""

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel

from schemas.challenges import MAX_FAILED_ATTEMPTS
from schemas.devices import KeyPurpose
from schemas.events import (
    ChallengeCreated,
    ChallengeCreatedEvent,
    DeviceUnbound,
    DeviceUnboundEvent,
    EventType,
    SignatureAttempt,
    SignatureRejectedEvent,
    SignatureVerifiedEvent,
)
from schemas.reasons import SIGNATURE_REJECTION_REASONS, Reason
from schemas.signals import ReasonCount, Scope, SuspiciousActivity, SuspiciousActivityEvent

_PERSON_ID = "person-20481"
_CLIENT_ID = "bank-app-1"
_DEVICE_ID = uuid.UUID("59f22fc6-6be9-46da-ac9c-bbb2aee2bf8d")
_KEY_ID = uuid.UUID("e2dd15be-8fae-46ab-b09b-03d2f7d19438")
_CHALLENGE_ID = uuid.UUID("52e81e62-f9fd-4438-9d6f-0226d3615d7b")
_UNKNOWN_CHALLENGE_ID = uuid.UUID("27d69250-329b-4c10-9f11-2cac64fa9b2b")
_CREATED_AT = datetime(2026, 3, 2, 9, 14, 5, 123000, tzinfo=UTC)
_EXPIRES_AT = _CREATED_AT + timedelta(minutes=5)
_DEVICE_DATA = '{"model":"Pixel 8","os":"Android 15","app_version":"7.4.1"}'
# A DER-encoded ECDSA P-256 signature (SEQUENCE of r and s), as the bank's app sends it.
_SIGNATURE = (
    "30450221008c37c6b048d1eeb9421e6c2f442d3c54e9564a5831f95dca3f83f0c5cb32fa17"
    "022071325faf7f692f5595b9ad64c93fe7e83cada992b47be6197de1c40575f0901c"
)
_EXAMPLES_NAMESPACE = uuid.UUID("89cff8dd-9f47-4c94-96e2-dc1c9c9cabf8")


def _fixed_id(label: str) -> uuid.UUID:
    return uuid.uuid5(_EXAMPLES_NAMESPACE, label)


def example_events() -> Iterator[tuple[str, BaseModel]]:
    """Every v1 example as (name, event): ``<message>`` or ``<message>.<variant>``."""
    yield "challenge_created", _challenge_created()
    yield "signature_verified", _verified()
    for reason in sorted(SIGNATURE_REJECTION_REASONS):
        yield f"signature_rejected.{reason.value}", _rejection(reason)
    yield "device_unbound", _device_unbound()
    for scope in Scope:
        yield f"suspicious_activity.{scope.value}", _suspicious_activity(scope)


def _challenge_created() -> ChallengeCreatedEvent:
    return ChallengeCreatedEvent(
        id=str(_fixed_id("challenge_created")),
        type=EventType.CHALLENGE_CREATED,
        subject=str(_CHALLENGE_ID),
        time=_CREATED_AT,
        data=ChallengeCreated(
            challenge_id=_CHALLENGE_ID,
            device_id=_DEVICE_ID,
            key_id=_KEY_ID,
            person_id=_PERSON_ID,
            client_id=_CLIENT_ID,
            key_purpose=KeyPurpose.UNRESTRICTED.value,
            device_data=_DEVICE_DATA,
            request_id="req-6910c58f-register",
            created_at=_CREATED_AT,
            expires_at=_EXPIRES_AT,
        ),
    )


def _verified() -> SignatureVerifiedEvent:
    data = _attempt_data(None, attempt=1, attempts_remaining=MAX_FAILED_ATTEMPTS)
    return SignatureVerifiedEvent(
        id=str(_fixed_id("attempt:verified")),
        type=EventType.SIGNATURE_VERIFIED,
        subject=str(data.challenge_id),
        time=data.decided_at,
        data=data,
    )


# (attempt, attempts_remaining) of a rejection, as the worker counts them (worker/binding.py):
# only an invalid signature is a counted attempt, a locked challenge has none left, and an
# unknown challenge has no count at all. The others follow one earlier failed attempt.
_REJECTION_COUNTS: dict[Reason, tuple[int | None, int | None]] = {
    Reason.INVALID_SIGNATURE: (2, MAX_FAILED_ATTEMPTS - 2),
    Reason.CHALLENGE_EXPIRED: (None, MAX_FAILED_ATTEMPTS - 1),
    Reason.CHALLENGE_LOCKED: (None, 0),
    Reason.CHALLENGE_ALREADY_VERIFIED: (None, MAX_FAILED_ATTEMPTS - 1),
    Reason.NOT_FOUND: (None, None),
    Reason.DEVICE_LIMIT_REACHED: (None, MAX_FAILED_ATTEMPTS - 1),
}


def _rejection(reason: Reason) -> SignatureRejectedEvent:
    attempt, attempts_remaining = _REJECTION_COUNTS[reason]
    data = _attempt_data(reason, attempt=attempt, attempts_remaining=attempts_remaining)
    return SignatureRejectedEvent(
        id=str(_fixed_id(f"attempt:{reason.value}")),
        type=EventType.SIGNATURE_REJECTED,
        subject=str(data.challenge_id),
        time=data.decided_at,
        data=data,
    )


def _attempt_data(
    reason: Reason | None, *, attempt: int | None, attempts_remaining: int | None
) -> SignatureAttempt:
    """One attempt on the example challenge; ``reason`` None: the signature verified."""
    # An unknown challenge: the worker knows no device, key or person for it.
    known = reason is not Reason.NOT_FOUND
    received_at = _CREATED_AT + timedelta(seconds=42)
    if reason is Reason.CHALLENGE_EXPIRED:
        received_at = _EXPIRES_AT + timedelta(seconds=18)
    label = reason.value if reason else "verified"
    return SignatureAttempt(
        challenge_id=_CHALLENGE_ID if known else _UNKNOWN_CHALLENGE_ID,
        device_id=_DEVICE_ID if known else None,
        key_id=_KEY_ID if known else None,
        person_id=_PERSON_ID if known else None,
        client_id=_CLIENT_ID,
        outcome="rejected" if reason else "verified",
        reason=reason,
        attempt=attempt,
        attempts_remaining=attempts_remaining,
        device_data=_DEVICE_DATA,
        signature=_SIGNATURE,
        request_id=f"req-{_fixed_id(label).hex[:8]}-verify",
        received_at=received_at,
        decided_at=received_at + timedelta(milliseconds=23),
    )


def _device_unbound() -> DeviceUnboundEvent:
    unbound_at = _CREATED_AT + timedelta(days=7, hours=3, minutes=12)
    return DeviceUnboundEvent(
        id=str(_fixed_id("device_unbound")),
        type=EventType.DEVICE_UNBOUND,
        subject=str(_CHALLENGE_ID),
        time=unbound_at,
        data=DeviceUnbound(
            device_id=_DEVICE_ID,
            key_id=_KEY_ID,
            person_id=_PERSON_ID,
            client_id=_CLIENT_ID,
            request_id="req-865e628f-unbind",
            unbound_at=unbound_at,
        ),
    )


def _suspicious_activity(scope: Scope) -> SuspiciousActivityEvent:
    """An alert as the fraud consumer raises it with its default settings (fraud/)."""
    by_device = scope is Scope.DEVICE
    threshold = 5 if by_device else 10
    first = _CREATED_AT + timedelta(seconds=42)
    last = first + timedelta(minutes=3, seconds=51)
    reasons = (
        [ReasonCount(reason=Reason.INVALID_SIGNATURE, count=threshold)]
        if by_device
        else [
            ReasonCount(reason=Reason.CHALLENGE_LOCKED, count=2),
            ReasonCount(reason=Reason.INVALID_SIGNATURE, count=threshold - 2),
        ]
    )
    return SuspiciousActivityEvent(
        id=str(_fixed_id(f"suspicious_activity:{scope.value}")),
        subject=str(_DEVICE_ID) if by_device else _PERSON_ID,
        # The alert's time is that of the rejection that made the count reach the threshold.
        time=last,
        data=SuspiciousActivity(
            scope=scope,
            person_id=_PERSON_ID,
            device_id=_DEVICE_ID if by_device else None,
            client_ids=[_CLIENT_ID],
            rejections=threshold,
            threshold=threshold,
            window_seconds=300,
            reasons=reasons,
            first_rejection_at=first,
            last_rejection_at=last,
            event_ids=[str(_fixed_id(f"{scope.value}:rejection:{n}")) for n in range(threshold)],
            devices=1 if by_device else 2,
        ),
    )
