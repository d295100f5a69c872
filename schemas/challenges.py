"""HTTP bodies of the signature challenge resource (``/v1/mfa/challenges/signatures``)."""

from datetime import datetime
from enum import StrEnum
from typing import Literal
from uuid import UUID

from schemas.fields import DeviceData, SignatureHex
from schemas.model import WireModel

MAX_FAILED_ATTEMPTS = 5  # PSD2 RTS art. 4


class ChallengeStatus(StrEnum):
    PENDING = "pending"
    VERIFIED = "verified"
    EXPIRED = "expired"
    LOCKED = "locked"


class SignatureSubmission(WireModel):
    """``PUT /v1/mfa/challenges/signatures/{id}`` body (the seed endpoint)."""

    signature: SignatureHex
    device_data: DeviceData | None = None


class ChallengeView(WireModel):
    """``GET /v1/mfa/challenges/signatures/{id}`` answer."""

    id: UUID
    type: Literal["signature"] = "signature"
    status: ChallengeStatus
    device_id: UUID
    created_at: datetime
    expires_at: datetime
    attempts_remaining: int
