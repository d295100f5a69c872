"""The message on ``mfa.otp-deliveries.v1`` for the SMS gateway (sensitive, short retention).

It is the only place an OTP ever appears outside the worker's memory.
"""

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import StringConstraints

from schemas.devices import Language
from schemas.model import WireModel

Otp = Annotated[str, StringConstraints(pattern=r"^[0-9]{6}$")]


class OtpDelivery(WireModel):
    challenge_id: UUID
    person_id: str
    otp: Otp
    language: Language
    expires_at: datetime
