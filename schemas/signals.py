"""Fraud signals on ``mfa.device-binding.suspicious-activity.v1``: CloudEvents 1.0, JSON.

Published by the fraud-signal consumer (``fraud/``), not by the service: it reads the result
events and raises one ``suspicious_activity`` event each time the rejections of one person
or one device within a sliding window reach a threshold, and one ``person_lock_alert`` for
each person the service locked (``person_locked``, SPEC §9). Keyed by person id. Like every
event of this product, none carries the OTP; none carries a signature either, only the ids
of the events it was raised on.
"""

from datetime import datetime
from enum import StrEnum
from typing import Literal
from uuid import UUID

from schemas.events import Envelope
from schemas.model import WireModel
from schemas.reasons import Reason

SUSPICIOUS_ACTIVITY: Literal["mfa.device_binding.suspicious_activity"] = (
    "mfa.device_binding.suspicious_activity"
)
PERSON_LOCK_ALERT: Literal["mfa.device_binding.person_lock_alert"] = (
    "mfa.device_binding.person_lock_alert"
)
SIGNALS_SOURCE = "/mfa/device-binding/fraud-signals"


class Scope(StrEnum):
    """Whose rejections were counted: one person's (across devices) or one device's."""

    PERSON = "person"
    DEVICE = "device"


class ReasonCount(WireModel):
    reason: Reason
    count: int


class SuspiciousActivity(WireModel):
    scope: Scope
    person_id: str
    # Set for scope "device"; None for scope "person".
    device_id: UUID | None
    client_ids: list[str]
    # Rejections counted within the window when the threshold was reached (== threshold).
    rejections: int
    threshold: int
    window_seconds: int
    reasons: list[ReasonCount]
    # Decision times of the first and the last counted rejection.
    first_rejection_at: datetime
    last_rejection_at: datetime
    # CloudEvents ids of the counted ``signature_rejected`` events, oldest first.
    event_ids: list[str]
    # Distinct devices among the counted rejections (1 for scope "device").
    devices: int


class SuspiciousActivityEvent(Envelope):
    """``subject`` is the person id (scope person) or the device id (scope device)."""

    source: str = SIGNALS_SOURCE
    type: Literal["mfa.device_binding.suspicious_activity"] = SUSPICIOUS_ACTIVITY
    data: SuspiciousActivity


class PersonLockAlert(WireModel):
    """A person the service locked out of new challenges after too many failed signatures in
    a row (SPEC §9), as its ``person_locked`` event told."""

    person_id: str
    client_id: str
    consecutive_failures: int
    locked_at: datetime
    locked_until: datetime
    # The attempt that locked the person: its challenge (None for a key addition), its device.
    challenge_id: UUID | None
    device_id: UUID | None
    # The CloudEvents id of the ``person_locked`` event.
    event_id: str


class PersonLockAlertEvent(Envelope):
    """``subject`` is the person as the service keys them: ``client_id/person_id``."""

    source: str = SIGNALS_SOURCE
    type: Literal["mfa.device_binding.person_lock_alert"] = PERSON_LOCK_ALERT
    data: PersonLockAlert
