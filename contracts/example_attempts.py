"""Example signature attempts, as the worker decides them: on the binding challenge
(``signature_*``) and on the payment a bound device signs (``device_signature_*``)."""

from datetime import timedelta

from contracts.example_values import (
    BINDING,
    CLIENT_ID,
    DEVICE_DATA,
    DEVICE_ID,
    PERSON_ID,
    SIGNATURE,
    SIGNING,
    ExampleChallenge,
    fixed_id,
)
from schemas.challenges import MAX_FAILED_ATTEMPTS
from schemas.devices import KeyPurpose
from schemas.events import (
    DeviceSignatureAttempt,
    DeviceSignatureRejectedEvent,
    DeviceSignatureVerifiedEvent,
    EventType,
    SignatureAttempt,
    SignatureRejectedEvent,
    SignatureVerifiedEvent,
)
from schemas.reasons import SIGNATURE_REJECTION_REASONS, Reason

# The reasons a ``device_signature_rejected`` event may carry: SPEC §5's five and SPEC §9's
# person_temporarily_locked, as binding attempts; device_limit_reached is about binding a
# device, never about signing with one.
DEVICE_SIGNATURE_REJECTION_REASONS = SIGNATURE_REJECTION_REASONS - {Reason.DEVICE_LIMIT_REACHED}

# (attempt, attempts_remaining) of a rejection, as the worker counts them (worker/binding.py):
# only an invalid signature is a counted attempt, a locked challenge has none left, and an
# unknown challenge has no count at all. The others follow one earlier failed attempt (a
# locked person's too: no signature is checked while the lock lasts, none is counted).
_REJECTION_COUNTS: dict[Reason, tuple[int | None, int | None]] = {
    Reason.INVALID_SIGNATURE: (2, MAX_FAILED_ATTEMPTS - 2),
    Reason.CHALLENGE_EXPIRED: (None, MAX_FAILED_ATTEMPTS - 1),
    Reason.CHALLENGE_LOCKED: (None, 0),
    Reason.CHALLENGE_ALREADY_VERIFIED: (None, MAX_FAILED_ATTEMPTS - 1),
    Reason.NOT_FOUND: (None, None),
    Reason.DEVICE_LIMIT_REACHED: (None, MAX_FAILED_ATTEMPTS - 1),
    Reason.PERSON_TEMPORARILY_LOCKED: (None, MAX_FAILED_ATTEMPTS - 1),
}


def verified() -> SignatureVerifiedEvent:
    data = _attempt_data(None, BINDING)
    return SignatureVerifiedEvent(
        id=str(fixed_id("attempt:verified")),
        type=EventType.SIGNATURE_VERIFIED,
        subject=str(data.challenge_id),
        time=data.decided_at,
        data=data,
    )


def rejection(reason: Reason) -> SignatureRejectedEvent:
    data = _attempt_data(reason, BINDING)
    return SignatureRejectedEvent(
        id=str(fixed_id(f"attempt:{reason.value}")),
        type=EventType.SIGNATURE_REJECTED,
        subject=str(data.challenge_id),
        time=data.decided_at,
        data=data,
    )


def device_verified() -> DeviceSignatureVerifiedEvent:
    data = _device_attempt_data(None)
    return DeviceSignatureVerifiedEvent(
        id=str(fixed_id("device_attempt:verified")),
        type=EventType.DEVICE_SIGNATURE_VERIFIED,
        subject=str(data.challenge_id),
        time=data.decided_at,
        data=data,
    )


def device_rejection(reason: Reason) -> DeviceSignatureRejectedEvent:
    data = _device_attempt_data(reason)
    return DeviceSignatureRejectedEvent(
        id=str(fixed_id(f"device_attempt:{reason.value}")),
        type=EventType.DEVICE_SIGNATURE_REJECTED,
        subject=str(data.challenge_id),
        time=data.decided_at,
        data=data,
    )


def _attempt_data(reason: Reason | None, challenge: ExampleChallenge) -> SignatureAttempt:
    """One attempt on ``challenge``; ``reason`` None: the signature verified, first time."""
    attempt, attempts_remaining = _REJECTION_COUNTS[reason] if reason else (1, MAX_FAILED_ATTEMPTS)
    # An unknown challenge: the worker knows no device, key or person for it.
    known = reason is not Reason.NOT_FOUND
    received_at = challenge.created_at + timedelta(seconds=42)
    if reason is Reason.CHALLENGE_EXPIRED:
        received_at = challenge.expires_at + timedelta(seconds=18)
    label = challenge.label + (reason.value if reason else "verified")
    return SignatureAttempt(
        challenge_id=challenge.id if known else challenge.unknown_id,
        device_id=DEVICE_ID if known else None,
        key_id=challenge.key_id if known else None,
        person_id=PERSON_ID if known else None,
        client_id=CLIENT_ID,
        outcome="rejected" if reason else "verified",
        reason=reason,
        attempt=attempt,
        attempts_remaining=attempts_remaining,
        device_data=DEVICE_DATA,
        signature=SIGNATURE,
        request_id=f"req-{fixed_id(label).hex[:8]}-verify",
        received_at=received_at,
        decided_at=received_at + timedelta(milliseconds=23),
    )


def _device_attempt_data(reason: Reason | None) -> DeviceSignatureAttempt:
    """One attempt on the example payment, with the purpose of the key that was to sign."""
    data = _attempt_data(reason, SIGNING)
    purpose = None if reason is Reason.NOT_FOUND else KeyPurpose.RESTRICTED
    return DeviceSignatureAttempt(**data.model_dump(), key_purpose=purpose)
