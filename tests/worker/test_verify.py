"""Unit tests of worker.verify on generated keys; Wycheproof runs in test_wycheproof.py."""

import base64
import contextlib
import hashlib
import random
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from schemas.reasons import Reason
from worker.errors import InvalidPublicKey, SignatureRejected
from worker.verify import (
    VerifiedSignature,
    load_public_key,
    parse_public_key_hex,
    verify_digest,
    verify_message,
)

# Written out from SEC 2 §2.4.2 rather than imported, so a typo in verify.py shows.
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF

OTP = b"012345"

# AlgorithmIdentifier { id-ecPublicKey, prime256v1 }, as in every P-256 SPKI.
P256_ALGORITHM = bytes.fromhex("301306072a8648ce3d020106082a8648ce3d030107")

# A P-256 point with y = 5, found by solving x^3 - 3x + b = 25 (mod p). Since y + p
# still fits in 32 bytes, it has a second, unreduced encoding to refuse.
SMALL_Y_X = 0xD7325D7646CD60D80A92738CEB345F844CFFAF35841022CAB176F692DE8DE1D7
SMALL_Y = 5


# --- helpers -------------------------------------------------------------------------


def sec1(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def sign(private_key: ec.EllipticCurvePrivateKey, message: bytes) -> tuple[int, int]:
    """Sign; return (r, s) with s low, so each test picks the form of s itself."""
    r, s = decode_dss_signature(private_key.sign(message, ec.ECDSA(hashes.SHA256())))
    return r, min(s, N - s)


def der_hex(r: int, s: int) -> str:
    return encode_dss_signature(r, s).hex()


def minimal(value: int) -> bytes:
    """Minimal DER INTEGER content of a non-negative integer."""
    return value.to_bytes(value.bit_length() // 8 + 1, "big")


def der_int(content: bytes) -> bytes:
    """An INTEGER around content taken as-is, so tests can break the content."""
    return b"\x02" + bytes([len(content)]) + content


def der_seq(body: bytes) -> bytes:
    return b"\x30" + bytes([len(body)]) + body


def assert_rejected(detail: str, *, public_key: bytes, signature: bytes | str) -> None:
    signature_hex = signature if isinstance(signature, str) else signature.hex()
    with pytest.raises(SignatureRejected) as info:
        verify_message(public_key=public_key, message=OTP, signature_hex=signature_hex)
    assert info.value.reason is Reason.INVALID_SIGNATURE
    assert info.value.detail == detail


def assert_invalid_key(detail: str, key: bytes) -> None:
    with pytest.raises(InvalidPublicKey) as info:
        load_public_key(key)
    assert info.value.detail == detail


def openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


# --- fixtures ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def private_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def public_key(private_key: ec.EllipticCurvePrivateKey) -> ec.EllipticCurvePublicKey:
    return private_key.public_key()


@pytest.fixture(scope="module")
def point(public_key: ec.EllipticCurvePublicKey) -> bytes:
    return sec1(public_key)


@pytest.fixture(scope="module")
def rs(private_key: ec.EllipticCurvePrivateKey) -> tuple[int, int]:
    """(r, s) of a signature over OTP with r and s below 2**255: 70 bytes of DER.

    The two spare bytes under the 72-byte limit let the BER variants of this very
    signature reach the DER checks instead of the length check.
    """
    while True:
        r, s = sign(private_key, OTP)
        if r < 2**255:  # s is low, hence below n/2 < 2**255
            return r, s


# --- accepted signatures -------------------------------------------------------------


def test_low_s_signature_verifies(point: bytes, rs: tuple[int, int]) -> None:
    r, s = rs
    verified = verify_message(public_key=point, message=OTP, signature_hex=der_hex(r, s))
    assert verified == VerifiedSignature(der=encode_dss_signature(r, s), r=r, s=s, high_s=False)


def test_high_s_signature_verifies(point: bytes, rs: tuple[int, int]) -> None:
    r, s = rs
    verified = verify_message(public_key=point, message=OTP, signature_hex=der_hex(r, N - s))
    assert (verified.r, verified.s, verified.high_s) == (r, N - s, True)


@pytest.mark.parametrize("form", ["sec1", "spki", "object"])
def test_key_forms(form: str, public_key: ec.EllipticCurvePublicKey, rs: tuple[int, int]) -> None:
    forms: dict[str, bytes | ec.EllipticCurvePublicKey] = {
        "sec1": sec1(public_key),
        "spki": spki(public_key),
        "object": public_key,
    }
    verify_message(public_key=forms[form], message=OTP, signature_hex=der_hex(*rs))


def test_uppercase_hex(point: bytes, rs: tuple[int, int]) -> None:
    signature_hex = der_hex(*rs).upper()
    assert signature_hex != der_hex(*rs)
    verify_message(public_key=point, message=OTP, signature_hex=signature_hex)


def test_digest_of_otp_verifies(point: bytes, rs: tuple[int, int]) -> None:
    digest = hashlib.sha256(OTP).digest()
    verified = verify_digest(public_key=point, digest=digest, signature_hex=der_hex(*rs))
    assert (verified.r, verified.s) == rs


def test_otp_leading_zero_is_signed(point: bytes, rs: tuple[int, int]) -> None:
    verify_message(public_key=point, message=b"012345", signature_hex=der_hex(*rs))
    with pytest.raises(SignatureRejected, match="signature does not verify"):
        verify_message(public_key=point, message=b"12345", signature_hex=der_hex(*rs))


def test_longest_der_passes_the_text_and_encoding_checks(point: bytes) -> None:
    # r and s with the top bit set take 33 bytes each: 72 bytes, 144 hex characters.
    value = 2**255 + 1
    signature_hex = der_hex(value, value)
    assert len(signature_hex) == 144
    assert_rejected("signature does not verify", public_key=point, signature=signature_hex)


@pytest.mark.parametrize(("r", "s"), [(1, 1), (N - 1, N - 1)], ids=["one", "n-1"])
def test_range_bounds_are_inclusive_of_1_and_n_minus_1(point: bytes, r: int, s: int) -> None:
    assert_rejected("signature does not verify", public_key=point, signature=der_hex(r, s))


# --- signatures that do not verify ---------------------------------------------------


def test_wrong_message(point: bytes, rs: tuple[int, int]) -> None:
    with pytest.raises(SignatureRejected, match="signature does not verify"):
        verify_message(public_key=point, message=b"012346", signature_hex=der_hex(*rs))


def test_wrong_key(rs: tuple[int, int]) -> None:
    other = sec1(ec.generate_private_key(ec.SECP256R1()).public_key())
    assert_rejected("signature does not verify", public_key=other, signature=der_hex(*rs))


def test_double_hashed_signature_fails(
    private_key: ec.EllipticCurvePrivateKey, point: bytes
) -> None:
    # A client that hashes the OTP itself, then hands the digest to SHA256withECDSA.
    digest = hashlib.sha256(OTP).digest()
    signature_hex = der_hex(*sign(private_key, digest))
    assert_rejected("signature does not verify", public_key=point, signature=signature_hex)
    with pytest.raises(SignatureRejected, match="signature does not verify"):
        verify_digest(public_key=point, digest=digest, signature_hex=signature_hex)


def test_raw_r_s_fails(point: bytes, rs: tuple[int, int]) -> None:
    raw = b"".join(value.to_bytes(32, "big") for value in rs)
    with pytest.raises(SignatureRejected) as info:
        verify_message(public_key=point, message=OTP, signature_hex=raw.hex())
    assert info.value.reason is Reason.INVALID_SIGNATURE


def test_rejection_carries_no_input(point: bytes, rs: tuple[int, int]) -> None:
    signature_hex = der_hex(*rs)
    with pytest.raises(SignatureRejected) as info:
        verify_message(public_key=point, message=b"987654", signature_hex=signature_hex)
    assert str(info.value) == "invalid_signature: signature does not verify"
    assert signature_hex not in str(info.value)


# --- signature text ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "detail"),
    [
        pytest.param(lambda h: "", "signature is empty", id="empty"),
        pytest.param(lambda h: "0x" + h, "signature has a 0x prefix", id="0x"),
        pytest.param(lambda h: "0X" + h, "signature has a 0x prefix", id="0X"),
        pytest.param(lambda h: " " + h, "signature contains whitespace", id="leading-space"),
        pytest.param(lambda h: h + "\n", "signature contains whitespace", id="trailing-newline"),
        pytest.param(lambda h: h[:8] + " " + h[8:], "signature contains whitespace", id="inner"),
        pytest.param(lambda h: h[:-2] + "zz", "signature is not hex", id="non-hex"),
        pytest.param(lambda h: h[:-2] + "\u0663\u0663", "signature is not hex", id="arabic-3"),
        pytest.param(
            lambda h: base64.b64encode(bytes.fromhex(h)).decode(),
            "signature is not hex",
            id="base64",
        ),
        pytest.param(lambda h: h[:-1], "signature hex has an odd length", id="odd-length"),
        pytest.param(
            lambda h: "0" * 145, "signature is longer than 144 hex characters", id="145-chars"
        ),
        pytest.param(
            lambda h: h + "0" * (146 - len(h)),
            "signature is longer than 144 hex characters",
            id="146-chars",
        ),
    ],
)
def test_bad_signature_text(
    make: Callable[[str], str], detail: str, point: bytes, rs: tuple[int, int]
) -> None:
    assert_rejected(detail, public_key=point, signature=make(der_hex(*rs)))


# --- signature encoding (strict DER) -------------------------------------------------


def ber_cases(r: int, s: int) -> list[tuple[str, bytes, str]]:
    """(id, signature bytes, expected detail) for every way the DER can be broken."""
    ri, si = der_int(minimal(r)), der_int(minimal(s))
    body = ri + si
    der = der_seq(body)
    return [
        ("not-sequence-set", b"\x31" + der[1:], "signature is not a DER SEQUENCE"),
        ("not-sequence-integer", ri, "signature is not a DER SEQUENCE"),
        ("lonely-sequence-tag", b"\x30", "signature is not a DER SEQUENCE"),
        (
            "sequence-long-form",
            b"\x30\x81" + bytes([len(body)]) + body,
            "SEQUENCE has a long-form length",
        ),
        (
            "sequence-indefinite",
            b"\x30\x80" + body + b"\x00\x00",
            "SEQUENCE has an indefinite length",
        ),
        ("truncated", der[:-1], "signature is truncated"),
        (
            "sequence-length-too-long",
            b"\x30" + bytes([len(body) + 1]) + body,
            "signature is truncated",
        ),
        ("trailing-zero", der + b"\x00", "trailing bytes after signature"),
        ("trailing-empty-sequence", der + b"\x30\x00", "trailing bytes after signature"),
        ("trailing-inside", der_seq(body + b"\x00"), "trailing bytes inside signature SEQUENCE"),
        ("null-inside", der_seq(body + b"\x05\x00"), "trailing bytes inside signature SEQUENCE"),
        ("third-integer", der_seq(body + b"\x02\x00"), "trailing bytes inside signature SEQUENCE"),
        ("empty-sequence", der_seq(b""), "r is missing"),
        ("r-only", der_seq(ri), "s is missing"),
        ("lonely-s-tag", der_seq(ri + b"\x02"), "s is missing"),
        ("r-bit-string", der_seq(b"\x03" + ri[1:] + si), "r is not an INTEGER"),
        ("s-octet-string", der_seq(ri + b"\x04" + si[1:]), "s is not an INTEGER"),
        ("r-long-form", der_seq(b"\x02\x81" + ri[1:] + si), "r has a long-form length"),
        ("s-long-form", der_seq(ri + b"\x02\x81" + si[1:]), "s has a long-form length"),
        (
            "r-indefinite",
            der_seq(b"\x02\x80" + ri[2:] + b"\x00\x00" + si),
            "r has an indefinite length",
        ),
        (
            "s-length-too-long",
            der_seq(ri + b"\x02" + bytes([len(si) - 1]) + si[2:]),
            "s is truncated",
        ),
        ("r-empty", der_seq(b"\x02\x00" + si), "r is empty"),
        ("s-empty", der_seq(ri + b"\x02\x00"), "s is empty"),
        ("r-negative", der_seq(der_int(b"\xff") + si), "r is negative"),
        (
            "r-missing-zero",
            der_seq(der_int((2**255 + 1).to_bytes(32, "big")) + si),
            "r is negative",
        ),
        ("s-negative", der_seq(ri + der_int(b"\x80\x01")), "s is negative"),
        (
            "r-zero-padded",
            der_seq(der_int(b"\x00" + minimal(r)) + si),
            "r has a non-minimal leading zero",
        ),
        (
            "s-zero-padded",
            der_seq(ri + der_int(b"\x00" + minimal(s))),
            "s has a non-minimal leading zero",
        ),
        (
            "r-zero-two-bytes",
            der_seq(der_int(b"\x00\x00") + si),
            "r has a non-minimal leading zero",
        ),
    ]


def range_cases(r: int, s: int) -> list[tuple[str, bytes, str]]:
    return [
        ("r-zero", encode_dss_signature(0, s), "r out of range"),
        ("s-zero", encode_dss_signature(r, 0), "s out of range"),
        ("r-n", encode_dss_signature(N, s), "r out of range"),
        ("s-n", encode_dss_signature(r, N), "s out of range"),
        ("r-plus-n", encode_dss_signature(r + N, s), "r out of range"),
        ("s-plus-n", encode_dss_signature(r, s + N), "s out of range"),
        (
            "r-33-bytes",
            der_seq(der_int(b"\x01" + r.to_bytes(32, "big")) + der_int(minimal(s))),
            "r out of range",
        ),
    ]


@pytest.mark.parametrize("name", [name for name, _, _ in ber_cases(1, 1)])
def test_bad_der(name: str, point: bytes, rs: tuple[int, int]) -> None:
    signature, detail = {case: (sig, text) for case, sig, text in ber_cases(*rs)}[name]
    assert_rejected(detail, public_key=point, signature=signature)


@pytest.mark.parametrize("name", [name for name, _, _ in range_cases(1, 1)])
def test_out_of_range(name: str, point: bytes, rs: tuple[int, int]) -> None:
    signature, detail = {case: (sig, text) for case, sig, text in range_cases(*rs)}[name]
    assert_rejected(detail, public_key=point, signature=signature)


def test_hostile_signatures_only_ever_reject(point: bytes, rs: tuple[int, int]) -> None:
    # Mutations of a valid signature: each verifies or raises SignatureRejected, nothing else.
    rng = random.Random(1)  # fixed seed: a failure must be reproducible
    der = bytearray(encode_dss_signature(*rs))
    for _ in range(2000):
        mutated = bytearray(der)
        for _ in range(rng.randint(1, 3)):
            position = rng.randrange(len(mutated))
            choice = rng.randrange(3)
            if choice == 0:
                mutated[position] = rng.randrange(256)
            elif choice == 1:
                del mutated[position]
            else:
                mutated.insert(position, rng.randrange(256))
        with contextlib.suppress(SignatureRejected):
            verify_message(public_key=point, message=OTP, signature_hex=mutated.hex())


# --- public keys ---------------------------------------------------------------------


def test_load_sec1_and_spki(public_key: ec.EllipticCurvePublicKey) -> None:
    for encoded in (sec1(public_key), spki(public_key)):
        loaded = load_public_key(encoded)
        assert isinstance(loaded.curve, ec.SECP256R1)
        assert loaded.public_numbers() == public_key.public_numbers()


def test_unreduced_coordinate_is_refused() -> None:
    x = SMALL_Y_X.to_bytes(32, "big")
    load_public_key(b"\x04" + x + SMALL_Y.to_bytes(32, "big"))
    assert_invalid_key("point is not on P-256", b"\x04" + x + (SMALL_Y + P).to_bytes(32, "big"))


def _p384_public_key() -> ec.EllipticCurvePublicKey:
    return ec.generate_private_key(ec.SECP384R1()).public_key()


@pytest.mark.parametrize(
    ("make", "detail"),
    [
        pytest.param(
            lambda k: b"", "not an uncompressed SEC1 point or SubjectPublicKeyInfo DER", id="empty"
        ),
        pytest.param(
            lambda k: b"\x00",
            "not an uncompressed SEC1 point or SubjectPublicKeyInfo DER",
            id="infinity",
        ),
        pytest.param(
            lambda k: b"\x06" + sec1(k)[1:],
            "not an uncompressed SEC1 point or SubjectPublicKeyInfo DER",
            id="hybrid",
        ),
        pytest.param(
            lambda k: k.public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
            ),
            "compressed points are not accepted",
            id="compressed",
        ),
        pytest.param(
            lambda k: b"\x03" + sec1(k)[1:],
            "compressed points are not accepted",
            id="compressed-prefix-65-bytes",
        ),
        pytest.param(lambda k: sec1(k)[:-1], "not a 65-byte uncompressed SEC1 point", id="short"),
        pytest.param(
            lambda k: sec1(k) + b"\x00", "not a 65-byte uncompressed SEC1 point", id="trailing"
        ),
        pytest.param(
            lambda k: sec1(_p384_public_key()),
            "not a 65-byte uncompressed SEC1 point",
            id="p384-point",
        ),
        pytest.param(
            lambda k: sec1(k)[:-1] + bytes([sec1(k)[-1] ^ 1]),
            "point is not on P-256",
            id="off-curve",
        ),
        pytest.param(lambda k: b"\x04" + bytes(64), "point is not on P-256", id="zero-zero"),
        pytest.param(
            lambda k: b"\x04" + P.to_bytes(32, "big") + sec1(k)[33:],
            "point is not on P-256",
            id="x-is-p",
        ),
        pytest.param(
            lambda k: spki(k) + b"\x00", "not a loadable SubjectPublicKeyInfo", id="spki-trailing"
        ),
        pytest.param(
            lambda k: b"\x30\x81\x59" + spki(k)[2:],
            "not a loadable SubjectPublicKeyInfo",
            id="spki-long-form",
        ),
        pytest.param(
            lambda k: spki(k)[:-1] + bytes([spki(k)[-1] ^ 1]),
            "not a loadable SubjectPublicKeyInfo",
            id="spki-off-curve",
        ),
        pytest.param(lambda k: spki(_p384_public_key()), "curve is not P-256", id="spki-p384"),
        pytest.param(
            lambda k: (
                ed25519.Ed25519PrivateKey.generate()
                .public_key()
                .public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            ),
            "SubjectPublicKeyInfo is not an EC key",
            id="spki-ed25519",
        ),
        pytest.param(
            lambda k: der_seq(
                P256_ALGORITHM
                + b"\x03\x22\x00"
                + k.public_bytes(
                    serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
                )
            ),
            "SubjectPublicKeyInfo is not canonical: named curve, uncompressed point",
            id="spki-compressed",
        ),
    ],
)
def test_bad_public_key(
    make: Callable[[ec.EllipticCurvePublicKey], bytes],
    detail: str,
    public_key: ec.EllipticCurvePublicKey,
) -> None:
    assert_invalid_key(detail, make(public_key))


def test_explicit_parameters_spki_is_refused(tmp_path: Path) -> None:
    key_pem, public_der = tmp_path / "key.pem", tmp_path / "public.der"
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key_pem)
    openssl(
        "ec",
        "-in",
        key_pem,
        "-pubout",
        "-param_enc",
        "explicit",
        "-outform",
        "DER",
        "-out",
        public_der,
    )
    # cryptography maps parameters equal to P-256's onto the named curve and loads the
    # key; only the comparison with the canonical encoding refuses it.
    assert_invalid_key(
        "SubjectPublicKeyInfo is not canonical: named curve, uncompressed point",
        public_der.read_bytes(),
    )


def test_hostile_keys_only_ever_raise_invalid_public_key(
    public_key: ec.EllipticCurvePublicKey,
) -> None:
    rng = random.Random(2)
    for encoded in (sec1(public_key), spki(public_key)):
        for _ in range(1000):
            mutated = bytearray(encoded)
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            with contextlib.suppress(InvalidPublicKey):
                load_public_key(bytes(mutated))


def test_verify_refuses_a_key_object_on_another_curve(rs: tuple[int, int]) -> None:
    with pytest.raises(InvalidPublicKey, match="curve is not P-256"):
        verify_message(public_key=_p384_public_key(), message=OTP, signature_hex=der_hex(*rs))


def test_verify_refuses_bad_key_bytes(point: bytes, rs: tuple[int, int]) -> None:
    with pytest.raises(InvalidPublicKey, match="point is not on P-256"):
        verify_message(public_key=b"\x04" + bytes(64), message=OTP, signature_hex=der_hex(*rs))


def test_verify_digest_refuses_a_digest_of_the_wrong_size(
    point: bytes, rs: tuple[int, int]
) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        verify_digest(public_key=point, digest=OTP, signature_hex=der_hex(*rs))


# --- registration hex form -----------------------------------------------------------


def test_parse_public_key_hex(public_key: ec.EllipticCurvePublicKey) -> None:
    for key_hex in (sec1(public_key).hex(), sec1(public_key).hex().upper()):
        assert parse_public_key_hex(key_hex).public_numbers() == public_key.public_numbers()


@pytest.mark.parametrize(
    ("make", "detail"),
    [
        pytest.param(lambda h: "", "public key is not 130 hex characters", id="empty"),
        pytest.param(lambda h: h[:-2], "public key is not 130 hex characters", id="128-chars"),
        pytest.param(lambda h: h + "00", "public key is not 130 hex characters", id="132-chars"),
        pytest.param(lambda h: h[:-1], "public key is not 130 hex characters", id="odd"),
        pytest.param(lambda h: h + "\n", "public key is not 130 hex characters", id="newline"),
        pytest.param(lambda h: " " + h[1:], "public key is not 130 hex characters", id="space"),
        pytest.param(lambda h: "0x" + h[2:], "public key is not 130 hex characters", id="0x"),
        pytest.param(lambda h: h[:-1] + "g", "public key is not 130 hex characters", id="non-hex"),
        pytest.param(
            lambda h: "03" + h[2:66], "public key is not 130 hex characters", id="compressed"
        ),
        pytest.param(lambda h: "05" + h[2:], "not a 65-byte uncompressed SEC1 point", id="prefix"),
        pytest.param(
            lambda h: h[:-1] + ("1" if h[-1] != "1" else "2"),
            "point is not on P-256",
            id="off-curve",
        ),
    ],
)
def test_bad_public_key_hex(
    make: Callable[[str], str], detail: str, public_key: ec.EllipticCurvePublicKey
) -> None:
    with pytest.raises(InvalidPublicKey) as info:
        parse_public_key_hex(make(sec1(public_key).hex()))
    assert info.value.detail == detail


# --- OpenSSL CLI ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "keygen",
    [
        pytest.param(["ecparam", "-name", "prime256v1", "-genkey", "-noout"], id="ecparam"),
        pytest.param(
            ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"], id="genpkey"
        ),
    ],
)
def test_openssl_cli_signature_verifies(keygen: list[str], tmp_path: Path) -> None:
    key_pem, public_der = tmp_path / "key.pem", tmp_path / "public.der"
    otp_file, signature = tmp_path / "otp.txt", tmp_path / "signature.der"
    otp_file.write_bytes(OTP)  # the six ASCII digits, no newline
    openssl(*keygen, "-out", key_pem)
    openssl("pkey", "-in", key_pem, "-pubout", "-outform", "DER", "-out", public_der)
    openssl("dgst", "-sha256", "-sign", key_pem, "-out", signature, otp_file)

    signature_hex = signature.read_bytes().hex()
    spki_der = public_der.read_bytes()
    registered = parse_public_key_hex(spki_der[-65:].hex())  # what a device registers
    for key in (spki_der, spki_der[-65:], registered):
        verify_message(public_key=key, message=OTP, signature_hex=signature_hex)
        verify_digest(
            public_key=key, digest=hashlib.sha256(OTP).digest(), signature_hex=signature_hex
        )
    with pytest.raises(SignatureRejected, match="signature does not verify"):
        verify_message(public_key=spki_der, message=OTP + b"\n", signature_hex=signature_hex)
