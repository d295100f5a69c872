"""Why a command was refused: one enum for the HTTP ``code`` and the event ``reason``.

The worker decides an outcome and names it with a :class:`Reason`; the HTTP front turns
the same value into the error ``code`` it answers with, and the result event carries it
as ``reason``. Both read this one definition, so they cannot drift apart.
"""

from enum import StrEnum


class Reason(StrEnum):
    INVALID_SIGNATURE = "invalid_signature"
    CHALLENGE_EXPIRED = "challenge_expired"
    CHALLENGE_LOCKED = "challenge_locked"
    CHALLENGE_ALREADY_VERIFIED = "challenge_already_verified"
    NOT_FOUND = "not_found"
    # The person already has the maximum of bound devices: refused at registration, and
    # at binding when other devices of the person were bound while this one was pending.
    DEVICE_LIMIT_REACHED = "device_limit_reached"
    # Only for creation (a device, a device challenge, a key): the Idempotency-Key came
    # with a different request.
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    # Device signing (SPEC §8): a transaction, or the caller, asks for the restricted key
    # and the device holds none.
    RESTRICTED_KEY_REQUIRED = "restricted_key_required"
    # The caller asked for the unrestricted key and the device holds none.
    KEY_PURPOSE_MISSING = "key_purpose_missing"
    # A key added to a device under a purpose it already holds a key for.
    KEY_PURPOSE_TAKEN = "key_purpose_taken"
    # SPEC §9: the person failed too many signatures in a row; new challenges are refused
    # until the lock ends.
    PERSON_TEMPORARILY_LOCKED = "person_temporarily_locked"
    # SPEC §9: a limit on the person's pending challenges or OTPs per hour (the worker), or on
    # the client's request rate (the HTTP front).
    TOO_MANY_REQUESTS = "too_many_requests"


# The reasons a ``signature_rejected`` event may carry: SPEC §5's five, device_limit_reached
# for a binding that would exceed the limit of bound devices, and person_temporarily_locked
# for an attempt while the person is locked (SPEC §9).
SIGNATURE_REJECTION_REASONS = frozenset(
    {
        Reason.INVALID_SIGNATURE,
        Reason.CHALLENGE_EXPIRED,
        Reason.CHALLENGE_LOCKED,
        Reason.CHALLENGE_ALREADY_VERIFIED,
        Reason.NOT_FOUND,
        Reason.DEVICE_LIMIT_REACHED,
        Reason.PERSON_TEMPORARILY_LOCKED,
    }
)

# HTTP status each reason is answered with (SPEC §3, error table).
HTTP_STATUS: dict[Reason, int] = {
    Reason.INVALID_SIGNATURE: 403,
    Reason.CHALLENGE_EXPIRED: 409,
    Reason.CHALLENGE_LOCKED: 409,
    Reason.CHALLENGE_ALREADY_VERIFIED: 409,
    Reason.NOT_FOUND: 404,
    Reason.DEVICE_LIMIT_REACHED: 409,
    Reason.IDEMPOTENCY_KEY_REUSED: 409,
    Reason.RESTRICTED_KEY_REQUIRED: 409,
    Reason.KEY_PURPOSE_MISSING: 409,
    Reason.KEY_PURPOSE_TAKEN: 409,
    Reason.PERSON_TEMPORARILY_LOCKED: 409,
    Reason.TOO_MANY_REQUESTS: 429,
}
