"""The keys that seal OTP digests at rest (SPEC §9): AES-256-GCM, associated data = the
challenge id, from ``OTP_ENCRYPTION_KEYS``.

The stored SHA-256(OTP) is exactly what a device signs: whoever reads it (a replica, a
backup) could bind their own key without the SMS. So the store keeps it sealed, and only a
worker holding the keys opens it, in memory, just before the batch's signatures are
verified.

``OTP_ENCRYPTION_KEYS`` is ``kid:base64key,...`` (each key 32 bytes): the first seals, every
one opens, so a key rotates in two deployments: add the new key second (every worker can
then open what it will seal), then move it first; drop the old one once the challenges it
sealed have ended (the challenge TTL, at most 10 minutes).

A sealed digest is ``len(kid) ‖ kid ‖ nonce (12 bytes) ‖ ciphertext and tag``: the kid names
the key that opens it, the nonce is random per seal, and the challenge id bound as associated
data means a sealed value copied to another challenge does not open there.
"""

import base64
import binascii
import os
import re
from collections.abc import Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from worker.errors import OtpKeysInvalid

KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # GCM's 96-bit nonce
_TAG_BYTES = 16
_KID = re.compile(r"[A-Za-z0-9._-]{1,32}")


class OtpKeyring:
    """Keys by kid; the first seals. Its repr names the kids only."""

    __slots__ = ("_ciphers", "_sealing_kid")

    def __init__(self, keys: Iterable[tuple[str, bytes]]) -> None:
        self._ciphers: dict[str, AESGCM] = {}
        for kid, key in keys:
            if not _KID.fullmatch(kid):
                raise OtpKeysInvalid(
                    "OTP_ENCRYPTION_KEYS: a kid is 1-32 characters of A-Z a-z 0-9 . _ -"
                )
            if len(key) != KEY_BYTES:
                raise OtpKeysInvalid(f"OTP_ENCRYPTION_KEYS: key {kid!r} is not {KEY_BYTES} bytes")
            if kid in self._ciphers:
                raise OtpKeysInvalid(f"OTP_ENCRYPTION_KEYS: kid {kid!r} appears twice")
            self._ciphers[kid] = AESGCM(key)
        if not self._ciphers:
            raise OtpKeysInvalid("OTP_ENCRYPTION_KEYS holds no key")
        self._sealing_kid = next(iter(self._ciphers))

    @classmethod
    def parse(cls, text: str) -> "OtpKeyring":
        """The keyring of ``kid:base64key,...`` (whitespace around items ignored)."""
        keys = []
        for item in text.split(","):
            kid, separator, encoded = item.strip().partition(":")
            if not separator:
                raise OtpKeysInvalid("OTP_ENCRYPTION_KEYS: each item is kid:base64key")
            try:
                key = base64.b64decode(encoded.strip(), validate=True)
            except (binascii.Error, ValueError):
                raise OtpKeysInvalid(f"OTP_ENCRYPTION_KEYS: key {kid!r} is not base64") from None
            keys.append((kid, key))
        return cls(keys)

    @property
    def sealing_kid(self) -> str:
        return self._sealing_kid

    @property
    def kids(self) -> tuple[str, ...]:
        return tuple(self._ciphers)

    def seal(self, challenge_id: str, digest: bytes) -> bytes:
        """``digest`` sealed with the first key, bound to ``challenge_id``."""
        kid = self._sealing_kid
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[kid].encrypt(nonce, digest, challenge_id.encode())
        return bytes([len(kid)]) + kid.encode("ascii") + nonce + sealed

    def open(self, challenge_id: str, sealed: bytes) -> bytes | None:
        """The digest ``sealed`` holds for ``challenge_id``; None when it does not open: an
        unknown kid (a key removed), another challenge's value, a tampered or truncated one.
        Never raises on what the database holds: the caller refuses such a challenge."""
        if not sealed:
            return None
        kid_end = 1 + sealed[0]
        if len(sealed) < kid_end + NONCE_BYTES + _TAG_BYTES:
            return None
        cipher = self._ciphers.get(sealed[1:kid_end].decode("ascii", errors="replace"))
        if cipher is None:
            return None
        nonce = sealed[kid_end : kid_end + NONCE_BYTES]
        try:
            return cipher.decrypt(nonce, sealed[kid_end + NONCE_BYTES :], challenge_id.encode())
        except InvalidTag:
            return None

    def __repr__(self) -> str:
        return f"OtpKeyring(kids={list(self._ciphers)!r})"


def keyring_from(keys: SecretStr | None) -> OtpKeyring:
    """The keyring of the ``OTP_ENCRYPTION_KEYS`` setting; refuses to go on without one."""
    if keys is None or not keys.get_secret_value().strip():
        raise OtpKeysInvalid(
            "OTP_ENCRYPTION_KEYS is not set: the worker seals OTP digests at rest and will not"
            " run without its keys (kid:base64key,...; `python -m worker new-otp-key` prints one)"
        )
    return OtpKeyring.parse(keys.get_secret_value())


def kid_of(sealed: bytes) -> str | None:
    """The kid a sealed digest names (for tests and operators: which key sealed it)."""
    if not sealed or len(sealed) < 1 + sealed[0]:
        return None
    return sealed[1 : 1 + sealed[0]].decode("ascii", errors="replace")


def new_key_text(kid: str) -> str:
    """A fresh ``kid:base64key`` item from the CSPRNG, for ``OTP_ENCRYPTION_KEYS``."""
    if not _KID.fullmatch(kid):
        raise OtpKeysInvalid("a kid is 1-32 characters of A-Z a-z 0-9 . _ -")
    return f"{kid}:{base64.b64encode(os.urandom(KEY_BYTES)).decode('ascii')}"
