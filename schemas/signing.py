"""HTTP bodies of device signing (SPEC §8): challenges a bound device signs, and its keys.

A device signing challenge asks a bound device to sign ``string_to_sign``: the canonical
JSON (RFC 8785) of the challenge's id, a nonce, its times and, for a payment, the
transaction. The app shows the customer the transaction read from this very string, so a
signature binds the amount and the payee (PSD2 RTS art. 5, dynamic linking).
"""

import json
import re
import unicodedata
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, Field, StrictStr, TypeAdapter

from schemas.challenges import ChallengeStatus
from schemas.devices import KeyPurpose
from schemas.fields import DeviceData, P256PublicKeyHex, SignatureHex
from schemas.model import WireModel

NONCE_BYTES = 32
_TIME: TypeAdapter[datetime] = TypeAdapter(datetime)
# Amounts as decimal text: at most 15 integer digits and 4 fraction digits, no sign, no
# exponent, no leading zeros. Never a JSON number: a float cannot hold 0.10 exactly.
_AMOUNT = re.compile(r"(0|[1-9][0-9]{0,14})(\.[0-9]{1,4})?")
_CURRENCY = re.compile(r"[A-Z]{3}")
_IBAN = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}")


def _amount(value: str) -> str:
    if not _AMOUNT.fullmatch(value):
        raise ValueError('value must be a decimal string such as "12.30"')
    if Decimal(value) == 0:
        raise ValueError("value must be greater than zero")
    return value


def _currency(value: str) -> str:
    if not _CURRENCY.fullmatch(value):
        raise ValueError("currency must be an ISO 4217 code of three capital letters")
    return value


def _iban(value: str) -> str:
    if not _IBAN.fullmatch(value):
        raise ValueError("iban must be 15 to 34 capital letters and digits, no spaces")
    # ISO 13616 check digits: the country code and check digits moved to the end, letters as
    # numbers (A = 10), the whole modulo 97 is 1.
    rearranged = value[4:] + value[:4]
    if int("".join(str(int(character, 36)) for character in rearranged)) % 97 != 1:
        raise ValueError("iban check digits do not match")
    return value


def _shown_text(value: str) -> str:
    # Text the app shows the customer: no control characters (a line break could fake a
    # second payee line) and no lone surrogates (not encodable as UTF-8).
    if any(unicodedata.category(character) in ("Cc", "Cs") for character in value):
        raise ValueError("must not contain control characters")
    return value


Amount = Annotated[StrictStr, AfterValidator(_amount)]
Currency = Annotated[StrictStr, AfterValidator(_currency)]
Iban = Annotated[StrictStr, AfterValidator(_iban)]
ShownText = Annotated[StrictStr, Field(min_length=1, max_length=140), AfterValidator(_shown_text)]


class Money(WireModel):
    value: Amount
    currency: Currency


class Payee(WireModel):
    name: ShownText
    iban: Iban | None = None


class Transaction(WireModel):
    """A payment the customer approves by signing: its amount and payee are in the signed
    text."""

    amount: Money
    payee: Payee
    reference: ShownText | None = None


class DeviceChallengeRequest(WireModel):
    """``POST /v1/mfa/challenges/devices`` body."""

    device_id: UUID
    # Omitted or "": the restricted key when the device holds one, else the unrestricted.
    key_purpose: KeyPurpose | Literal[""] | None = None
    device_data: DeviceData | None = None
    transaction: Transaction | None = None

    def wanted_purpose(self) -> KeyPurpose | None:
        """The purpose asked for; None: the service chooses."""
        return self.key_purpose or None


class DeviceChallengeOpened(WireModel):
    """``201`` answer to ``POST /v1/mfa/challenges/devices``."""

    id: UUID
    type: Literal["device"] = "device"
    device_id: UUID
    key_id: UUID
    key_purpose: KeyPurpose
    string_to_sign: str
    created_at: datetime
    expires_at: datetime


class DeviceChallengeView(WireModel):
    """``GET /v1/mfa/challenges/devices/{id}`` answer."""

    id: UUID
    type: Literal["device"] = "device"
    status: ChallengeStatus
    device_id: UUID
    key_id: UUID
    key_purpose: KeyPurpose
    string_to_sign: str
    transaction: Transaction | None
    created_at: datetime
    expires_at: datetime
    attempts_remaining: int


class KeyView(WireModel):
    key_id: UUID
    key_purpose: KeyPurpose
    created_at: datetime
    used_at: datetime | None


class DeviceKeys(WireModel):
    """``GET /v1/mfa/devices/{id}/keys`` answer."""

    device_id: UUID
    keys: list[KeyView]


class DeviceSignature(WireModel):
    """An existing key of the device vouching for a new one: its signature of the new key's
    lowercase hex (ASCII bytes), made as every signature of §2 is."""

    signature_key_purpose: KeyPurpose
    signature: SignatureHex


class KeyAddition(WireModel):
    """``POST /v1/mfa/devices/{id}/keys`` body."""

    key_type: Literal["ecdsa-p256"]
    key: P256PublicKeyHex
    key_purpose: KeyPurpose
    device_signature: DeviceSignature


class KeyAdded(WireModel):
    """``201`` answer to ``POST /v1/mfa/devices/{id}/keys``."""

    id: UUID


def to_text(moment: datetime) -> str:
    """A time as the API writes it (RFC 3339, UTC, ``Z``): the same in ``string_to_sign``
    and in the JSON bodies."""
    text: str = _TIME.dump_python(moment, mode="json")
    return text


def string_to_sign(
    *,
    challenge_id: UUID,
    nonce: str,
    created_at: datetime,
    expires_at: datetime,
    transaction: Transaction | None,
) -> str:
    """The canonical JSON (RFC 8785) the device signs. Every value is a string, so the JCS
    rules reduce to: keys sorted, no whitespace, UTF-8, only ``"``, ``\\`` and control
    characters escaped. Optional fields that are absent are left out, never ``null``."""
    document: dict[str, Any] = {
        "challenge_id": str(challenge_id),
        "nonce": nonce,
        "created_at": to_text(created_at),
        "expires_at": to_text(expires_at),
    }
    if transaction is not None:
        document["transaction"] = transaction.model_dump(mode="json", exclude_none=True)
    return canonical_json(document)


def canonical_json(document: dict[str, Any]) -> str:
    """RFC 8785 for a document of objects and strings (no numbers, no ``null``)."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def signed_transaction(text: str) -> Transaction | None:
    """The transaction a ``string_to_sign`` carries, as an app reads it before showing it."""
    transaction = json.loads(text).get("transaction")
    return None if transaction is None else Transaction.model_validate(transaction)
