"""The phone's keystore, as ``make demo`` plays it. DEVELOPMENT ONLY.

One P-256 key per purpose (SPEC §8), whose private half never leaves this object: the app
asks for a new key's public point and for signatures, as it would ask the Secure Enclave or
the Android Keystore. Every signature is SHA256withECDSA (SHA-256 once) over a text's UTF-8
bytes, DER-encoded, in lowercase hex: what SPEC §2 asks for.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


class Keystore:
    def __init__(self) -> None:
        self._keys: dict[str, ec.EllipticCurvePrivateKey] = {}

    def generate(self, purpose: str) -> str:
        """A new key for ``purpose``; its public key, the hex of its uncompressed SEC1
        point."""
        if purpose in self._keys:
            raise ValueError(f"the keystore holds a {purpose} key already")
        self._keys[purpose] = ec.generate_private_key(ec.SECP256R1())
        return self.public_hex(purpose)

    def public_hex(self, purpose: str) -> str:
        point = (
            self._keys[purpose]
            .public_key()
            .public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        )
        return point.hex()

    def sign(self, purpose: str, text: str) -> str:
        """The key of ``purpose``'s signature of ``text``'s UTF-8 bytes: DER, hex."""
        signature = self._keys[purpose].sign(text.encode("utf-8"), ec.ECDSA(hashes.SHA256()))
        return signature.hex()
