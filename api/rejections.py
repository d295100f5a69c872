"""A worker's refusal, and the front's own 429, as the HTTP errors they are answered with.

The status and ``code`` come from the :class:`~schemas.reasons.Reason`, so they match the
event's ``reason``; the title, detail and ``source.field`` are worded here, by the API alone.
"""

from datetime import UTC, datetime
from typing import Final

from api.errors import NOT_FOUND_DETAIL, ApiError
from schemas.reasons import HTTP_STATUS, Reason

_REJECTION_TITLES: Final = {
    Reason.INVALID_SIGNATURE: "Invalid Signature",
    Reason.CHALLENGE_EXPIRED: "Challenge Expired",
    Reason.CHALLENGE_LOCKED: "Challenge Locked",
    Reason.CHALLENGE_ALREADY_VERIFIED: "Challenge Already Verified",
    Reason.NOT_FOUND: "Not Found",
    Reason.DEVICE_LIMIT_REACHED: "Device Limit Reached",
    Reason.IDEMPOTENCY_KEY_REUSED: "Idempotency Key Reused",
    Reason.RESTRICTED_KEY_REQUIRED: "Restricted Key Required",
    Reason.KEY_PURPOSE_MISSING: "Key Purpose Missing",
    Reason.KEY_PURPOSE_TAKEN: "Key Purpose Taken",
    Reason.PERSON_TEMPORARILY_LOCKED: "Person Temporarily Locked",
    Reason.TOO_MANY_REQUESTS: "Too Many Requests",
}
_REJECTION_DETAILS: Final = {
    Reason.CHALLENGE_EXPIRED: "The challenge has expired.",
    Reason.CHALLENGE_LOCKED: "The challenge is locked after too many failed attempts.",
    Reason.CHALLENGE_ALREADY_VERIFIED: "The challenge has already been verified.",
    Reason.DEVICE_LIMIT_REACHED: "The person already has the maximum number of bound devices.",
    Reason.IDEMPOTENCY_KEY_REUSED: (
        "The Idempotency-Key was already used for a different request."
    ),
    Reason.RESTRICTED_KEY_REQUIRED: (
        "The challenge needs the device's restricted key, and the device holds none."
    ),
    Reason.KEY_PURPOSE_MISSING: "The device holds no key of the requested purpose.",
    Reason.KEY_PURPOSE_TAKEN: "The device already holds a key of this purpose.",
    Reason.PERSON_TEMPORARILY_LOCKED: (
        "Too many failed signatures in a row for this person; new challenges are refused"
        " until the lock ends."
    ),
    Reason.TOO_MANY_REQUESTS: "Too many requests; retry after the time given in Retry-After.",
}
_REJECTION_FIELDS: Final = {
    Reason.INVALID_SIGNATURE: "signature",
    Reason.DEVICE_LIMIT_REACHED: "person_id",
    Reason.IDEMPOTENCY_KEY_REUSED: "Idempotency-Key",
    Reason.RESTRICTED_KEY_REQUIRED: "key_purpose",
    Reason.KEY_PURPOSE_MISSING: "key_purpose",
    Reason.KEY_PURPOSE_TAKEN: "key_purpose",
    Reason.PERSON_TEMPORARILY_LOCKED: "person_id",
}


class Rejected(ApiError):
    """A worker's refusal; status and code come from the :class:`Reason`, so they match the
    event's ``reason``. The wording is the API's alone: nothing the worker knows (who owns a
    challenge, why a signature failed) can reach a caller."""

    def __init__(
        self,
        reason: Reason,
        *,
        attempts_remaining: int | None = None,
        retry_after_seconds: int | None = None,
        locked_until: datetime | None = None,
    ) -> None:
        if reason is Reason.INVALID_SIGNATURE:
            detail = _invalid_signature_detail(attempts_remaining)
        elif reason is Reason.NOT_FOUND:
            detail = NOT_FOUND_DETAIL
        elif reason is Reason.PERSON_TEMPORARILY_LOCKED and locked_until is not None:
            detail = (
                "Too many failed signatures in a row for this person; new challenges are"
                f" refused until {locked_until.astimezone(UTC).isoformat().replace('+00:00', 'Z')}."
            )
        else:
            detail = _REJECTION_DETAILS[reason]
        super().__init__(
            status=HTTP_STATUS[reason],
            code=reason.value,
            title=_REJECTION_TITLES[reason],
            detail=detail,
            field=_REJECTION_FIELDS.get(reason, "id"),
            headers=(
                {"Retry-After": str(max(1, retry_after_seconds))}
                if retry_after_seconds is not None
                else None
            ),
        )
        self.reason = reason
        self.attempts_remaining = attempts_remaining


def _invalid_signature_detail(attempts_remaining: int | None) -> str:
    if attempts_remaining is None:
        return "The signature does not verify."
    if attempts_remaining == 1:
        return "The signature does not verify; 1 attempt remains."
    return f"The signature does not verify; {attempts_remaining} attempts remain."


class TooManyRequests(ApiError):
    """429 decided by the HTTP front itself (the client's rate), before anything is
    published; the worker's limits arrive as a :class:`Rejected` of the same code."""

    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(
            status=429,
            code=Reason.TOO_MANY_REQUESTS.value,
            title=_REJECTION_TITLES[Reason.TOO_MANY_REQUESTS],
            detail=_REJECTION_DETAILS[Reason.TOO_MANY_REQUESTS],
            field="Authorization",
            headers={"Retry-After": str(max(1, retry_after_seconds))},
        )
