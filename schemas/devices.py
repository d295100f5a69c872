"""HTTP bodies of the device resource (``/v1/mfa/devices``)."""

from datetime import datetime
from enum import StrEnum
from typing import Literal
from uuid import UUID

from schemas.fields import DeviceData, Identifier, P256PublicKeyHex
from schemas.model import WireModel

MAX_BOUND_DEVICES_PER_PERSON = 5


class KeyPurpose(StrEnum):
    UNRESTRICTED = "unrestricted"
    RESTRICTED = "restricted"


class DeviceStatus(StrEnum):
    PENDING = "pending"
    BOUND = "bound"
    UNBOUND = "unbound"


Language = Literal["de", "en", "fr"]


class DeviceRegistration(WireModel):
    """``POST /v1/mfa/devices`` body."""

    person_id: Identifier
    key_type: Literal["ecdsa-p256"]
    key: P256PublicKeyHex
    key_purpose: KeyPurpose = KeyPurpose.UNRESTRICTED
    name: Identifier | None = None
    challenge_type: Literal["sms"] = "sms"
    language: Language = "en"
    device_data: DeviceData | None = None


class ChallengeSummary(WireModel):
    id: UUID
    type: Literal["signature"] = "signature"
    created_at: datetime
    expires_at: datetime


class DeviceRegistered(WireModel):
    """``202`` answer to ``POST /v1/mfa/devices``."""

    id: UUID
    key_id: UUID
    challenge: ChallengeSummary


class DeviceView(WireModel):
    id: UUID
    key_id: UUID
    person_id: str
    name: str | None
    key_type: Literal["ecdsa-p256"] = "ecdsa-p256"
    key_purpose: KeyPurpose
    key: str
    status: DeviceStatus
    created_at: datetime
    bound_at: datetime | None


class DeviceList(WireModel):
    data: list[DeviceView]
