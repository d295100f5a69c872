"""Generated input: requests from the served OpenAPI document, and keys and signatures for the
pure verifier. Nothing generated may produce a 5xx, an error body outside SPEC §3's two
shapes, or an exception from the verifier other than its own two.

Both parts are derandomized (Hypothesis draws from a fixed seed derived from the test), so a
CI run sees the same inputs as the last local run, and keep no example database.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    decode_dss_signature,
    encode_dss_signature,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from api.auth import TokenVerifier
from api.dependencies import get_gateway, get_verifier
from api.request_ids import REQUEST_ID_HEADER
from api.settings import Settings
from schemas.errors import LIST_SHAPED_STATUSES
from tests.api.fakes import FakeGateway
from tests.api.tokens import TokenMint
from tests.support.claims import AUDIENCE, ISSUER
from worker.errors import InvalidPublicKey, SignatureRejected
from worker.verify import verify_digest, verify_message

pytestmark = pytest.mark.faults

# --- (a) the HTTP API from its OpenAPI document ---------------------------------------

# Per generation mode; the two modes together make well over 1,000 requests.
EXAMPLES_PER_MODE = 540
# Hypothesis may stop early once a small input space is exhausted; each mode must still send
# this many requests, so that the total is at least 1,000.
MIN_REQUESTS_PER_MODE = 500
FLAT_KEYS = {"id", "status", "code", "title", "detail", "error_code"}
ITEM_KEYS = {"id", "status", "code", "title", "detail", "source"}
# The statuses SPEC §3 (and the API's 405 for a wrong method) can answer with a body.
CLIENT_ERRORS = {400, 401, 403, 404, 405, 409}

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


@dataclass
class Target:
    """The real app with a fake gateway, reachable only through ``asgi`` (no lifespan)."""

    asgi: ASGIApp
    mint: TokenMint
    gateway: FakeGateway
    sent: dict[str, int] = field(default_factory=dict)


def _target(tmp_path: Path) -> Target:
    mint = TokenMint()
    jwks = mint.write_jwks(tmp_path / "jwks.json")
    settings = Settings.model_validate(
        {"auth_jwks_file": jwks, "auth_issuer": ISSUER, "auth_audience": AUDIENCE}
    )
    app = create_app(settings)
    gateway = FakeGateway()
    verifier = TokenVerifier.from_jwks_file(jwks, issuer=ISSUER, audience=AUDIENCE)
    # As tests/api/conftest.py's unit_app: every dependency the routes need, without Kafka.
    app.dependency_overrides[get_gateway] = lambda: gateway
    app.dependency_overrides[get_verifier] = lambda: verifier

    async def without_lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
        # schemathesis's ASGI client runs the app's lifespan, which would connect to Kafka
        # and load the JWKS into app.state; the overrides above stand in for both. Returning
        # before reading any lifespan message is how an app says it has no lifespan.
        if scope["type"] == "lifespan":
            return
        await app(scope, receive, send)

    return Target(asgi=without_lifespan, mint=mint, gateway=gateway)


def _authorization(target: Target, kind: str) -> dict[str, str]:
    if kind == "valid":
        return {"Authorization": f"Bearer {target.mint.token()}"}
    if kind == "no-scope":
        return {"Authorization": f"Bearer {target.mint.token(scope='profile')}"}
    if kind == "garbage":
        return {"Authorization": "Bearer not.a.jwt"}
    return {}


def _assert_error_shape(status: int, body: Any, request_id: str) -> None:
    """SPEC §3: flat for 400/404 (and 405), listed for 401/403/409; never anything else."""
    assert status in CLIENT_ERRORS, f"unexpected client error status {status}: {body!r}"
    assert isinstance(body, dict), body
    if status in LIST_SHAPED_STATUSES:
        assert set(body) == {"errors"}, body
        [item] = body["errors"]
        assert set(item) == ITEM_KEYS, item
        assert item["status"] == status
        assert set(item["source"]) == {"field", "message"}
        assert item["id"] == request_id
        assert item["code"]
        assert item["title"]
        assert item["detail"]
    else:
        assert set(body) == FLAT_KEYS, body
        assert body["status"] == status
        assert body["code"] == body["error_code"]
        assert body["id"] == request_id
        assert body["title"]
        assert body["detail"]


@pytest.fixture
def target(tmp_path: Path) -> Target:
    return _target(tmp_path)


@pytest.mark.parametrize(
    "mode",
    [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE],
    ids=["positive", "negative"],
)
def test_generated_requests_never_fail_the_contract(
    target: Target, mode: schemathesis.GenerationMode
) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", target.asgi)
    operations = schema.as_strategy(generation_mode=mode)
    tokens = st.sampled_from(["valid", "valid", "absent", "garbage", "no-scope"])
    statuses: dict[int, int] = {}

    @settings(
        max_examples=EXAMPLES_PER_MODE,
        derandomize=True,
        database=None,
        deadline=None,
        # Generating bodies from JSON Schema is slow on a shared machine, and negative mode
        # filters many candidates; neither is a problem with the system under test.
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(case=operations, token=tokens)
    def send(case: schemathesis.Case[Any], token: str) -> None:
        response = case.call(headers=_authorization(target, token))
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        assert response.status_code < 500, response.text
        if 400 <= response.status_code < 500:
            # schemathesis's headers: lower-case names, a list of values each.
            [request_id] = response.headers[REQUEST_ID_HEADER.lower()]
            _assert_error_shape(response.status_code, response.json(), request_id)
        # schemathesis's own: no 5xx, documented status and content type, and a body that
        # matches the document's schema for that status.
        case.validate_response(
            response,
            checks=[
                not_a_server_error,
                status_code_conformance,
                content_type_conformance,
                response_schema_conformance,
            ],
        )

    send()
    sent = sum(statuses.values())
    print(f"{mode.value}: {sent} requests, statuses {dict(sorted(statuses.items()))}")
    assert sent >= MIN_REQUESTS_PER_MODE, statuses
    assert not any(status >= 500 for status in statuses)
    # The fuzzing reached past authentication, and past validation to the (fake) gateway.
    assert statuses.get(401, 0) > 0
    assert any(400 <= status < 500 and status != 401 for status in statuses)
    if mode is schemathesis.GenerationMode.POSITIVE:
        assert target.gateway.sent


# --- (b) the pure verifier ------------------------------------------------------------

N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
VERIFIER_EXAMPLES = 300
VERIFIER_SETTINGS = settings(
    max_examples=VERIFIER_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
REJECTIONS = (SignatureRejected, InvalidPublicKey)

HEX_DIGITS = "0123456789abcdefABCDEF"
# Text a signature field may carry: hex in both cases, and the characters SPEC §2 refuses
# (whitespace, an x for 0x, base64's alphabet, non-ASCII digits and a NUL).
signature_text = st.one_of(
    st.text(alphabet=HEX_DIGITS, max_size=160),
    st.text(alphabet=HEX_DIGITS + " \t\n\r\x0bxX+/=\x00\u0660\uff10gG", max_size=160),
    st.text(max_size=200),
    st.binary(max_size=80).map(bytes.hex),
)
key_bytes = st.one_of(
    st.binary(max_size=140),
    # Right lengths and first bytes, wrong content: the paths a real key takes.
    st.binary(min_size=64, max_size=64).map(lambda b: b"\x04" + b),
    st.binary(min_size=32, max_size=32).map(lambda b: b"\x02" + b),
    st.binary(min_size=90, max_size=90).map(lambda b: b"\x30" + b),
)
digests = st.binary(min_size=32, max_size=32)
DETERMINISTIC = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
private_keys = st.integers(min_value=1, max_value=N - 1).map(
    lambda scalar: ec.derive_private_key(scalar, ec.SECP256R1())
)


def _point(private_key: ec.EllipticCurvePrivateKey) -> bytes:
    return private_key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def _spki(private_key: ec.EllipticCurvePrivateKey) -> bytes:
    return private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _only_rejects(call: Callable[[], object]) -> type[Exception]:
    try:
        call()
    except REJECTIONS as exc:
        return type(exc)
    raise AssertionError("hostile input was accepted")


@VERIFIER_SETTINGS
@given(key=key_bytes, digest=digests, signature=signature_text)
def test_arbitrary_inputs_to_verify_digest_only_reject(
    key: bytes, digest: bytes, signature: str
) -> None:
    _only_rejects(lambda: verify_digest(public_key=key, digest=digest, signature_hex=signature))


@VERIFIER_SETTINGS
@given(key=key_bytes, message=st.binary(max_size=64), signature=signature_text)
def test_arbitrary_inputs_to_verify_message_only_reject(
    key: bytes, message: bytes, signature: str
) -> None:
    _only_rejects(lambda: verify_message(public_key=key, message=message, signature_hex=signature))


@VERIFIER_SETTINGS
@given(private_key=private_keys, digest=digests, signature=signature_text)
def test_arbitrary_signatures_under_a_real_key_only_reject(
    private_key: ec.EllipticCurvePrivateKey, digest: bytes, signature: str
) -> None:
    # A real key gets past step 1, so every signature check of SPEC §2 is reached.
    raised = _only_rejects(
        lambda: verify_digest(
            public_key=_point(private_key), digest=digest, signature_hex=signature
        )
    )
    assert raised is SignatureRejected


@dataclass(frozen=True)
class Signed:
    private_key: ec.EllipticCurvePrivateKey
    otp: bytes
    der: bytes

    @property
    def digest(self) -> bytes:
        return hashlib.sha256(self.otp).digest()


@st.composite
def real_signatures(draw: st.DrawFn) -> Signed:
    private_key = draw(private_keys)
    otp = f"{draw(st.integers(min_value=0, max_value=999_999)):06d}".encode()
    # RFC 6979 nonces: the same draw gives the same DER bytes, so a derandomized run is
    # reproducible (Hypothesis also refuses draws that depend on an OS-random length).
    der = private_key.sign(otp, DETERMINISTIC)
    if draw(st.booleans()):
        # The other valid s, so high-S and low-S are both generated (SPEC §2 accepts both).
        r, s = decode_dss_signature(der)
        der = encode_dss_signature(r, N - s)
    return Signed(private_key, otp, der)


@VERIFIER_SETTINGS
@given(signed=real_signatures(), upper=st.booleans(), spki=st.booleans())
def test_real_signatures_verify(signed: Signed, upper: bool, spki: bool) -> None:
    text = signed.der.hex().upper() if upper else signed.der.hex()
    key = _spki(signed.private_key) if spki else _point(signed.private_key)
    verified = verify_digest(public_key=key, digest=signed.digest, signature_hex=text)
    assert verified.der == signed.der
    assert verify_message(public_key=key, message=signed.otp, signature_hex=text).der == signed.der
    # Also as a pre-hashed signature (SPEC §2: equivalently over SHA-256(otp)).
    prehashed = signed.private_key.sign(signed.digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    verify_digest(public_key=key, digest=signed.digest, signature_hex=prehashed.hex())


def _mutations(signed: Signed, data: st.DataObject) -> tuple[str, bytes, bytes]:
    """One way of spoiling a real signature: (what, key, DER) that must be rejected."""
    der, key = signed.der, _point(signed.private_key)
    r, s = decode_dss_signature(der)
    kind = data.draw(
        st.sampled_from(
            [
                "flip-bit",
                "truncate",
                "append",
                "r-plus-n",
                "s-plus-n",
                "r-zero",
                "s-zero",
                "swap",
                "raw-r-s",
                "long-form-length",
                "padded-r",
                "other-key",
                "other-otp",
            ]
        )
    )
    if kind == "flip-bit":
        index = data.draw(st.integers(min_value=0, max_value=len(der) * 8 - 1))
        flipped = bytearray(der)
        flipped[index // 8] ^= 1 << (index % 8)
        return kind, key, bytes(flipped)
    if kind == "truncate":
        return kind, key, der[: data.draw(st.integers(min_value=0, max_value=len(der) - 1))]
    if kind == "append":
        return kind, key, der + data.draw(st.binary(min_size=1, max_size=4))
    if kind == "r-plus-n":
        return kind, key, encode_dss_signature(r + N, s)
    if kind == "s-plus-n":
        return kind, key, encode_dss_signature(r, s + N)
    if kind == "r-zero":
        return kind, key, encode_dss_signature(0, s)
    if kind == "s-zero":
        return kind, key, encode_dss_signature(r, 0)
    if kind == "swap":
        return kind, key, encode_dss_signature(s, r)
    if kind == "raw-r-s":
        return kind, key, r.to_bytes(32, "big") + s.to_bytes(32, "big")
    if kind == "long-form-length":
        # The same SEQUENCE with its length in BER long form (0x81 len).
        return kind, key, der[:1] + b"\x81" + der[1:]
    if kind == "padded-r":
        # r with one more leading zero than DER allows: the same value, another encoding.
        content = r.to_bytes(r.bit_length() // 8 + 1, "big")
        body = b"\x02" + bytes([len(content) + 1]) + b"\x00" + content + der[4 + der[3] :]
        return kind, key, b"\x30" + bytes([len(body)]) + body
    if kind == "other-key":
        other = data.draw(private_keys)
        return kind, _point(other), der
    # "other-otp": the signature of a different OTP under the same key.
    otp = data.draw(
        st.integers(min_value=0, max_value=999_999).filter(lambda o: o != int(signed.otp))
    )
    return kind, key, signed.private_key.sign(f"{otp:06d}".encode(), DETERMINISTIC)


@VERIFIER_SETTINGS
@given(signed=real_signatures(), data=st.data())
def test_mutated_real_signatures_are_rejected(signed: Signed, data: st.DataObject) -> None:
    kind, key, der = _mutations(signed, data)
    # A flipped bit may land where the key check could see it, but the key here is real:
    # everything that fails is the signature.
    if kind == "other-key" and key == _point(signed.private_key):
        return  # the same scalar drawn twice; vanishingly rare, and not a mutation
    try:
        verify_digest(public_key=key, digest=signed.digest, signature_hex=der.hex())
    except SignatureRejected:
        return
    raise AssertionError(f"mutation {kind} of a real signature was accepted: {der.hex()}")
