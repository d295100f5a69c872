"""Field types shared by several wire models, with the validation SPEC §2 and §3 ask for."""

import re
import unicodedata
from typing import Annotated

from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import AfterValidator, Field, StringConstraints

MAX_SIGNATURE_HEX = 144  # 72 bytes: the longest DER encoding of a P-256 signature
MAX_DEVICE_DATA_BYTES = 8 * 1024
SEC1_UNCOMPRESSED_HEX = 130
_HEX = re.compile(r"[0-9a-fA-F]+")


def _signature_hex(value: str) -> str:
    if not _HEX.fullmatch(value):
        raise ValueError("signature must be hex (0-9, a-f) without prefix or whitespace")
    if len(value) % 2:
        raise ValueError("signature hex must have an even number of characters")
    # One spelling per signature: idempotent retries compare the same bytes.
    return value.lower()


def _device_data(value: str) -> str:
    if len(value.encode()) > MAX_DEVICE_DATA_BYTES:
        raise ValueError(f"device_data must be at most {MAX_DEVICE_DATA_BYTES} bytes")
    # PostgreSQL's text cannot hold U+0000: accepted here, it would fail in the worker.
    if "\x00" in value:
        raise ValueError("device_data must not contain NUL characters")
    return value


def _printable(value: str) -> str:
    # Identifiers end up in keys, logs, events and database text: control characters
    # (U+0000 above all, which PostgreSQL's text cannot hold) have no business there.
    if any(unicodedata.category(character) == "Cc" for character in value):
        raise ValueError("must not contain control characters")
    return value


def _p256_point(value: str) -> str:
    if len(value) != SEC1_UNCOMPRESSED_HEX or not _HEX.fullmatch(value) or value[:2] != "04":
        raise ValueError("key must be the hex of an uncompressed SEC1 P-256 point (04||X||Y)")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), bytes.fromhex(value))
    except ValueError:
        raise ValueError("key is not a point on P-256") from None
    return value.lower()


SignatureHex = Annotated[
    str, Field(min_length=1, max_length=MAX_SIGNATURE_HEX), AfterValidator(_signature_hex)
]
DeviceData = Annotated[str, AfterValidator(_device_data)]
P256PublicKeyHex = Annotated[str, AfterValidator(_p256_point)]
Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=128), AfterValidator(_printable)
]
