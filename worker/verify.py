"""ECDSA P-256 / SHA-256 signature verification (SPEC §2): a pure function, no I/O.

Checks run in the order SPEC §2 lists them; the first failure raises.

1. Public key: ``ecdsa-p256`` only. An uncompressed SEC1 point ``04 ‖ X ‖ Y`` (65 bytes)
   or a SubjectPublicKeyInfo DER holding one, on curve P-256 with a named-curve OID.
   Compressed points, points off the curve or at infinity, other curves, explicit curve
   parameters and non-canonical or trailing bytes raise :class:`InvalidPublicKey`.
2. Hash: SHA-256 applied once to the message (:func:`verify_message`), or a SHA-256
   digest computed beforehand (:func:`verify_digest`; the service stores SHA-256(otp)).
3. Signature text: hex in either case; empty, longer than 144 characters, ``0x``
   prefix, whitespace, any other character and odd length are refused. Base64 fails here.
4. Signature bytes: a strict ASN.1 DER ``Ecdsa-Sig-Value`` (SEQUENCE of two INTEGERs,
   short-form lengths, minimal non-negative integers, nothing after either). BER
   encodings, trailing bytes and raw ``r ‖ s`` fail here.
5. Range: ``1 <= r < n`` and ``1 <= s < n``.
6. ECDSA verification by ``cryptography``. High-S signatures are accepted: keystores emit
   both, and replay protection comes from the single-use challenge, not the signature.

Every signature failure raises :class:`SignatureRejected` with
``Reason.INVALID_SIGNATURE``; a bad key raises :class:`InvalidPublicKey`. Nothing else
escapes on hostile input.
"""

import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from schemas.reasons import Reason
from worker.errors import InvalidPublicKey, SignatureRejected

__all__ = [
    "VerifiedSignature",
    "load_public_key",
    "parse_public_key_hex",
    "verify_digest",
    "verify_message",
]

# Order n of the P-256 group (SEC 2, §2.4.2).
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

# The longest DER P-256 signature is 72 bytes: 30 46, then 02 21 00 and 32 bytes for each
# of r and s.
_MAX_SIGNATURE_HEX = 144
_SHA256_DIGEST_SIZE = 32
_UNCOMPRESSED_POINT_SIZE = 65

_DER_SEQUENCE = 0x30
_DER_INTEGER = 0x02
_HALF_ORDER = _P256_ORDER // 2

# Made once: cryptography checks an algorithm object on every call, and a fresh one per
# verification cost about a tenth of the verification itself.
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_ECDSA_PREHASHED_SHA256 = ec.ECDSA(utils.Prehashed(hashes.SHA256()))

# Spelled-out ASCII classes: \d and str.isdigit would let non-ASCII digits through.
_HEX = re.compile(r"[0-9A-Fa-f]+")
_PUBLIC_KEY_HEX = re.compile(r"[0-9A-Fa-f]{130}")


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A device key decoded and vetted once (P-256, a valid point): what a worker keeps for
    the many signatures that follow, so that none of them pays for decoding or vetting."""

    key: ec.EllipticCurvePublicKey


def prepare_key(key: bytes) -> VerificationKey:
    """Decode and vet ``key`` (as :func:`load_public_key`) for repeated verification."""
    return VerificationKey(load_public_key(key))


@dataclass(frozen=True, slots=True)
class VerifiedSignature:
    """A signature that verified: its DER bytes, its integers, and whether s > n/2."""

    der: bytes
    r: int
    s: int
    high_s: bool


def load_public_key(key: bytes) -> ec.EllipticCurvePublicKey:
    """Load a P-256 key from an uncompressed SEC1 point or SubjectPublicKeyInfo DER."""
    # The first byte tells the forms apart: a SEC1 point starts with its form octet,
    # a DER SubjectPublicKeyInfo with the SEQUENCE tag.
    first = key[:1]
    if first == b"\x04":
        return _load_uncompressed_point(key)
    if first in (b"\x02", b"\x03"):
        raise InvalidPublicKey(detail="compressed points are not accepted")
    if first == bytes([_DER_SEQUENCE]):
        return _load_subject_public_key_info(key)
    raise InvalidPublicKey(detail="not an uncompressed SEC1 point or SubjectPublicKeyInfo DER")


def parse_public_key_hex(key_hex: str) -> ec.EllipticCurvePublicKey:
    """Load the registration form of a key: 130 hex characters of ``04 ‖ X ‖ Y``."""
    if _PUBLIC_KEY_HEX.fullmatch(key_hex) is None:
        raise InvalidPublicKey(detail="public key is not 130 hex characters")
    return _load_uncompressed_point(bytes.fromhex(key_hex))


def verify_message(
    *,
    public_key: bytes | ec.EllipticCurvePublicKey | VerificationKey,
    message: bytes,
    signature_hex: str,
) -> VerifiedSignature:
    """Verify an ECDSA P-256 signature over ``message``, hashed once with SHA-256."""
    return _verify(public_key, signature_hex, message, _ECDSA_SHA256)


def verify_digest(
    *,
    public_key: bytes | ec.EllipticCurvePublicKey | VerificationKey,
    digest: bytes,
    signature_hex: str,
) -> VerifiedSignature:
    """Verify an ECDSA P-256 signature given SHA-256(message) instead of the message.

    A ``digest`` that is not 32 bytes is a caller bug, not hostile input: ValueError.
    """
    if len(digest) != _SHA256_DIGEST_SIZE:
        raise ValueError("digest must be the 32 bytes of a SHA-256 digest")
    return _verify(public_key, signature_hex, digest, _ECDSA_PREHASHED_SHA256)


def _verify(
    public_key: bytes | ec.EllipticCurvePublicKey | VerificationKey,
    signature_hex: str,
    data: bytes,
    algorithm: ec.ECDSA,
) -> VerifiedSignature:
    if isinstance(public_key, VerificationKey):
        key = public_key.key  # vetted when it was prepared
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        # A key object may come from anywhere; only bytes go through load_public_key.
        if not isinstance(public_key.curve, ec.SECP256R1):
            raise InvalidPublicKey(detail="curve is not P-256")
        key = public_key
    else:
        key = load_public_key(public_key)
    der = _decode_signature_hex(signature_hex)
    integers = _canonical_der_signature(der)
    if integers is None:
        # Something about it is wrong: the checks one by one, to say what.
        r, s = _parse_der_signature(der)
        _check_range("r", r)
        _check_range("s", s)
        raise _rejected("signature is not canonical DER")  # each check passed: unreachable
    r, s = integers
    try:
        key.verify(der, data, algorithm)
    except (InvalidSignature, ValueError) as exc:
        # ValueError is cryptography's answer to a malformed signature; the checks above
        # refuse those first, but should one slip through it is still a rejection.
        raise _rejected("signature does not verify") from exc
    return VerifiedSignature(der=der, r=r, s=s, high_s=s > _HALF_ORDER)


def _load_uncompressed_point(point: bytes) -> ec.EllipticCurvePublicKey:
    if len(point) != _UNCOMPRESSED_POINT_SIZE or point[0] != 0x04:
        raise InvalidPublicKey(detail="not a 65-byte uncompressed SEC1 point")
    try:
        # OpenSSL checks that X and Y are below p and that the point is on the curve
        # (which also excludes infinity, having no affine coordinates).
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError as exc:
        raise InvalidPublicKey(detail="point is not on P-256") from exc


def _load_subject_public_key_info(der: bytes) -> ec.EllipticCurvePublicKey:
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm) as exc:
        # UnsupportedAlgorithm: unknown curve OIDs and explicit curve parameters.
        raise InvalidPublicKey(detail="not a loadable SubjectPublicKeyInfo") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise InvalidPublicKey(detail="SubjectPublicKeyInfo is not an EC key")
    if not isinstance(key.curve, ec.SECP256R1):
        raise InvalidPublicKey(detail="curve is not P-256")
    # The parser accepts a compressed point, and explicit parameters equal to P-256's
    # (read as the named curve). Comparing with the one canonical encoding refuses
    # both, and any leniency of the DER parser, without writing a second one.
    canonical = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if canonical != der:
        raise InvalidPublicKey(
            detail="SubjectPublicKeyInfo is not canonical: named curve, uncompressed point"
        )
    return key


def _decode_signature_hex(signature_hex: str) -> bytes:
    if not signature_hex:
        raise _rejected("signature is empty")
    # Length first, so nothing below ever scans an oversized input.
    if len(signature_hex) > _MAX_SIGNATURE_HEX:
        raise _rejected("signature is longer than 144 hex characters")
    if signature_hex[:2] in ("0x", "0X"):
        raise _rejected("signature has a 0x prefix")
    if _HEX.fullmatch(signature_hex) is None:
        # bytes.fromhex would skip whitespace silently, so it is refused before decoding;
        # looked for only here, since hex holds none (this runs for every signature).
        if any(char.isspace() for char in signature_hex):
            raise _rejected("signature contains whitespace")
        raise _rejected("signature is not hex")
    if len(signature_hex) % 2:
        raise _rejected("signature hex has an odd length")
    return bytes.fromhex(signature_hex)


def _canonical_der_signature(der: bytes) -> tuple[int, int] | None:
    """``(r, s)`` when ``der`` is exactly what :func:`_parse_der_signature` and the range
    checks accept, else None: every signature takes this one quick pass, and only one that
    fails it goes through those checks, which name the problem."""
    size = len(der)
    if size < 8 or der[0] != _DER_SEQUENCE or der[1] != size - 2 or der[2] != _DER_INTEGER:
        return None
    r_size = der[3]  # short form only: no length here reaches 0x80
    s_at = 4 + r_size
    if r_size == 0 or s_at + 2 >= size or der[s_at] != _DER_INTEGER:
        return None
    s_size = der[s_at + 1]
    if s_size == 0 or s_at + 2 + s_size != size:
        return None
    r_bytes, s_bytes = der[4:s_at], der[s_at + 2 :]
    for content in (r_bytes, s_bytes):
        # Non-negative, and minimal: a leading zero only before a high bit.
        if content[0] & 0x80 or (len(content) > 1 and content[0] == 0 and not content[1] & 0x80):
            return None
    r, s = int.from_bytes(r_bytes, "big"), int.from_bytes(s_bytes, "big")
    if not (0 < r < _P256_ORDER and 0 < s < _P256_ORDER):
        return None
    return r, s


def _parse_der_signature(der: bytes) -> tuple[int, int]:
    # Written out rather than left to cryptography, whose parser is not guaranteed to
    # refuse every BER form; the wire format is a contract (SPEC §2).
    if len(der) < 2 or der[0] != _DER_SEQUENCE:
        raise _rejected("signature is not a DER SEQUENCE")
    end = 2 + _der_length(der[1], "SEQUENCE")
    if end > len(der):
        raise _rejected("signature is truncated")
    if end < len(der):
        raise _rejected("trailing bytes after signature")
    r, offset = _parse_der_integer(der, 2, end, "r")
    s, offset = _parse_der_integer(der, offset, end, "s")
    if offset != end:
        raise _rejected("trailing bytes inside signature SEQUENCE")
    return r, s


def _der_length(octet: int, name: str) -> int:
    # At most 72 bytes in all, so every length fits the short form: a long form here is
    # either not minimal (BER) or longer than the input. 0x80 alone is BER's indefinite
    # length.
    if octet == 0x80:
        raise _rejected(f"{name} has an indefinite length")
    if octet & 0x80:
        raise _rejected(f"{name} has a long-form length")
    return octet


def _parse_der_integer(der: bytes, offset: int, end: int, name: str) -> tuple[int, int]:
    if end - offset < 2:
        raise _rejected(f"{name} is missing")
    if der[offset] != _DER_INTEGER:
        raise _rejected(f"{name} is not an INTEGER")
    start = offset + 2
    stop = start + _der_length(der[offset + 1], name)
    if stop > end:
        raise _rejected(f"{name} is truncated")
    if stop == start:
        raise _rejected(f"{name} is empty")
    content = der[start:stop]
    if content[0] & 0x80:
        raise _rejected(f"{name} is negative")
    # A leading zero is only allowed to keep the next byte's high bit from reading as a
    # sign; anywhere else it makes a second encoding of the same value.
    if len(content) > 1 and content[0] == 0 and not content[1] & 0x80:
        raise _rejected(f"{name} has a non-minimal leading zero")
    return int.from_bytes(content, "big"), stop


def _check_range(name: str, value: int) -> None:
    if not 1 <= value < _P256_ORDER:
        raise _rejected(f"{name} out of range")


def _rejected(detail: str) -> SignatureRejected:
    return SignatureRejected(reason=Reason.INVALID_SIGNATURE, detail=detail)
