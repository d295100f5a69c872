"""Valid request bodies, and the pieces the validation tests break."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

# A DER ECDSA signature (the seed's example): the API checks only its spelling.
SIGNATURE = (
    "3045022100bdbebd8ba5e4ea23a4ab3d852cbf0968cbc7319c7c4388e0c54bf34e896d19d80220"
    "5880fca38bf5450bff73d41c675e1444b8e3c75dc8bf764d5c0e9282bd150ade"
)


def device_key_hex() -> str:
    """A fresh P-256 public key as the hex of its uncompressed SEC1 point."""
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    return public.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    ).hex()


def off_curve_key_hex() -> str:
    """130 hex characters starting 04 whose point is not on P-256."""
    key = device_key_hex()
    last = int(key[-2:], 16) ^ 0x01
    return key[:-2] + f"{last:02x}"


def registration(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "person_id": "person-1",
        "key_type": "ecdsa-p256",
        "key": device_key_hex(),
        "key_purpose": "unrestricted",
        "name": "Anna's phone",
        "challenge_type": "sms",
        "language": "de",
        "device_data": "YW55IHN0cmluZyBwcm92aWRlZCBieSB0aGUgY2xpZW50Cg==",
    }
    for name, value in overrides.items():
        if value is None:
            body.pop(name, None)
        else:
            body[name] = value
    return body
