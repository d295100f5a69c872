"""The fixed values the v1 examples are made of (:mod:`contracts.examples`): one person, one
device bound through one challenge, a restricted key added to it, then a payment of 12.30 EUR
and a login signed with its keys (SPEC §8). Realistic, and never random: the examples are
written once and frozen."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from schemas.signing import Money, Payee, Transaction

PERSON_ID = "person-20481"
CLIENT_ID = "bank-app-1"
DEVICE_ID = uuid.UUID("59f22fc6-6be9-46da-ac9c-bbb2aee2bf8d")
KEY_ID = uuid.UUID("e2dd15be-8fae-46ab-b09b-03d2f7d19438")
CHALLENGE_ID = uuid.UUID("52e81e62-f9fd-4438-9d6f-0226d3615d7b")
UNKNOWN_CHALLENGE_ID = uuid.UUID("27d69250-329b-4c10-9f11-2cac64fa9b2b")
CREATED_AT = datetime(2026, 3, 2, 9, 14, 5, 123000, tzinfo=UTC)
LIFETIME = timedelta(minutes=5)
EXPIRES_AT = CREATED_AT + LIFETIME
DEVICE_DATA = '{"model":"Pixel 8","os":"Android 15","app_version":"7.4.1"}'
# A DER-encoded ECDSA P-256 signature (SEQUENCE of r and s), as the bank's app sends it.
SIGNATURE = (
    "30450221008c37c6b048d1eeb9421e6c2f442d3c54e9564a5831f95dca3f83f0c5cb32fa17"
    "022071325faf7f692f5595b9ad64c93fe7e83cada992b47be6197de1c40575f0901c"
)
_EXAMPLES_NAMESPACE = uuid.UUID("89cff8dd-9f47-4c94-96e2-dc1c9c9cabf8")

# Device signing: the restricted key added to the bound device, signed by its binding key.
RESTRICTED_KEY_ID = uuid.UUID("040a7783-4118-499b-8056-44ea20020db4")
KEY_ADDED_AT = CREATED_AT + timedelta(days=1, hours=2, minutes=7, seconds=11)
# A payment, which needs the restricted key.
PAYMENT_ID = uuid.UUID("9671e143-4578-4df4-b87d-0cd50d4f6a45")
PAYMENT_AT = CREATED_AT + timedelta(days=2, hours=9, minutes=8, seconds=26)
PAYMENT_NONCE = "21ce146a45c5ee1686dbb10f7a2d0ecec0457f9850adfe97e5947ea861ba4ff3"
PAYMENT = Transaction(
    amount=Money(value="12.30", currency="EUR"),
    payee=Payee(name="Stadtwerke Musterstadt", iban="DE89370400440532013000"),
    reference="Invoice 2026-0318",
)
# A login a little earlier, asking for the unrestricted key.
LOGIN_ID = uuid.UUID("c5c8c1e8-9b11-4fce-9e60-a41b8d303017")
LOGIN_AT = PAYMENT_AT - timedelta(minutes=2, seconds=40)
LOGIN_NONCE = "e71c169ccc5f7e99da71d13de532bb0d1c34d2539cd08da794623f944ffec017"
UNKNOWN_DEVICE_CHALLENGE_ID = uuid.UUID("d9eff28a-8511-4903-aec9-3ea08ca35afb")
# SPEC section 9: the person locked by the 5th failed signature in a row, on the payment, for
# PERSON_LOCK_SECONDS' default of 900 seconds.
PERSON_SUBJECT = f"{CLIENT_ID}/{PERSON_ID}"
LOCK_FAILURES = 5
LOCKED_AT = PAYMENT_AT + timedelta(minutes=1, seconds=37, milliseconds=23)
LOCKED_UNTIL = LOCKED_AT + timedelta(seconds=900)


def fixed_id(label: str) -> uuid.UUID:
    """The same id for the same label, every time the examples are made."""
    return uuid.uuid5(_EXAMPLES_NAMESPACE, label)


@dataclass(frozen=True)
class ExampleChallenge:
    """What an attempt is made on: a challenge, the key that is to sign it, and the id of
    an unknown challenge (reason not_found) beside it. ``label`` tells the request ids of
    its attempts from those of another challenge."""

    id: uuid.UUID
    created_at: datetime
    key_id: uuid.UUID
    unknown_id: uuid.UUID
    label: str = ""

    @property
    def expires_at(self) -> datetime:
        return self.created_at + LIFETIME


BINDING = ExampleChallenge(CHALLENGE_ID, CREATED_AT, KEY_ID, UNKNOWN_CHALLENGE_ID)
SIGNING = ExampleChallenge(
    PAYMENT_ID, PAYMENT_AT, RESTRICTED_KEY_ID, UNKNOWN_DEVICE_CHALLENGE_ID, "device:"
)
