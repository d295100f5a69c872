"""Bearer-token verification (api/auth.py) and the development key tool (dev)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from api.auth import (
    REQUIRED_SCOPE,
    InsufficientScope,
    Principal,
    TokenVerifier,
    Unauthenticated,
)
from harness import devkeys as devkeys_module
from tests.support.claims import AUDIENCE, ISSUER, access_claims

EC_KID = "ec-1"
RSA_KID = "rsa-1"
REPO_ROOT = Path(__file__).resolve().parents[2]

Mint = Callable[..., str]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _jwk(public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey, kid: str) -> dict[str, Any]:
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        jwk = dict(ECAlgorithm.to_jwk(public_key, as_dict=True))
    else:
        jwk = dict(RSAAlgorithm.to_jwk(public_key, as_dict=True))
    jwk["kid"] = kid
    return jwk


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return ".".join(
        _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def jwks(ec_key: ec.EllipticCurvePrivateKey, rsa_key: rsa.RSAPrivateKey) -> dict[str, Any]:
    return {"keys": [_jwk(ec_key.public_key(), EC_KID), _jwk(rsa_key.public_key(), RSA_KID)]}


@pytest.fixture
def verifier(jwks: dict[str, Any]) -> TokenVerifier:
    return TokenVerifier(jwks, issuer=ISSUER, audience=AUDIENCE)


@pytest.fixture
def mint_es256(ec_key: ec.EllipticCurvePrivateKey) -> Mint:
    def mint(kid: str | None = EC_KID, **overrides: Any) -> str:
        headers = {"kid": kid} if kid is not None else None
        return jwt.encode(access_claims(**overrides), ec_key, algorithm="ES256", headers=headers)

    return mint


@pytest.fixture
def mint_rs256(rsa_key: rsa.RSAPrivateKey) -> Mint:
    def mint(kid: str | None = RSA_KID, **overrides: Any) -> str:
        headers = {"kid": kid} if kid is not None else None
        return jwt.encode(access_claims(**overrides), rsa_key, algorithm="RS256", headers=headers)

    return mint


def _assert_rejected(verifier: TokenVerifier, token: str, detail: str | None = None) -> None:
    with pytest.raises(Unauthenticated) as caught:
        verifier.authenticate(f"Bearer {token}")
    exc = caught.value
    if detail is not None:
        assert exc.detail == detail
    assert str(exc) == exc.detail
    for piece in [token, *token.split(".")]:
        if len(piece) >= 8:
            assert piece not in exc.detail
            assert piece not in str(exc)
            assert piece not in repr(exc)
    # Nothing chained: a logged traceback cannot show token text either.
    assert exc.__cause__ is None
    assert exc.__context__ is None or exc.__suppress_context__


# --- accepted tokens ---------------------------------------------------------------


def test_valid_es256_token(verifier: TokenVerifier, mint_es256: Mint) -> None:
    principal = verifier.authenticate(f"Bearer {mint_es256()}")
    assert principal == Principal(client_id="bank-app-1", scopes=frozenset({REQUIRED_SCOPE}))
    verifier.authorize(principal)


def test_valid_rs256_token(verifier: TokenVerifier, mint_rs256: Mint) -> None:
    principal = verifier.authenticate(f"Bearer {mint_rs256()}")
    assert principal.client_id == "bank-app-1"
    verifier.authorize(principal)


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "BeArEr"])
def test_scheme_is_case_insensitive(verifier: TokenVerifier, mint_es256: Mint, scheme: str) -> None:
    assert verifier.authenticate(f"{scheme} {mint_es256()}").client_id == "bank-app-1"


def test_client_id_falls_back_to_sub(verifier: TokenVerifier, mint_es256: Mint) -> None:
    principal = verifier.authenticate(f"Bearer {mint_es256(client_id=None)}")
    assert principal.client_id == "subject-1"


def test_client_id_claim_wins_over_sub(verifier: TokenVerifier, mint_rs256: Mint) -> None:
    token = mint_rs256(client_id="bank-app-2", sub="someone-else")
    assert verifier.authenticate(f"Bearer {token}").client_id == "bank-app-2"


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("mfa:device-binding", {"mfa:device-binding"}),
        ("openid  mfa:device-binding profile", {"openid", "mfa:device-binding", "profile"}),
        ("", set()),
        (None, set()),
    ],
)
def test_scope_parsing(
    verifier: TokenVerifier, mint_es256: Mint, scope: str | None, expected: set[str]
) -> None:
    token = mint_es256(scope=scope) if scope is not None else mint_es256(scope=None)
    assert verifier.authenticate(f"Bearer {token}").scopes == frozenset(expected)


def test_audience_list_containing_ours(verifier: TokenVerifier, mint_es256: Mint) -> None:
    token = mint_es256(aud=["other-api", AUDIENCE])
    assert verifier.authenticate(f"Bearer {token}").client_id == "bank-app-1"


def test_token_without_kid_uses_the_only_key(ec_key: ec.EllipticCurvePrivateKey) -> None:
    only = TokenVerifier(
        {"keys": [_jwk(ec_key.public_key(), EC_KID)]}, issuer=ISSUER, audience=AUDIENCE
    )
    token = jwt.encode(access_claims(), ec_key, algorithm="ES256")
    assert only.authenticate(f"Bearer {token}").client_id == "bank-app-1"


def test_expiry_within_leeway_is_accepted(verifier: TokenVerifier, mint_es256: Mint) -> None:
    token = mint_es256(exp=int(time.time()) - 5)
    assert verifier.authenticate(f"Bearer {token}").client_id == "bank-app-1"


def test_a_verified_token_is_not_verified_again_until_it_expires(
    verifier: TokenVerifier, mint_es256: Mint, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Expired 29 s ago: accepted within the 30 s leeway, for about one more second.
    token = mint_es256(exp=int(time.time()) - 29)
    first = verifier.authenticate(f"Bearer {token}")
    with monkeypatch.context() as patched:
        decoded: list[str] = []
        patched.setattr(jwt, "decode", lambda *args, **kwargs: decoded.append("x"))
        assert verifier.authenticate(f"Bearer {token}") == first
        assert decoded == []
    # Past its expiry and the leeway it is decoded again, and refused.
    time.sleep(2.1)
    _assert_rejected(verifier, token, "token expired")


def test_a_refused_token_is_not_remembered(verifier: TokenVerifier, mint_es256: Mint) -> None:
    token = mint_es256(iss="https://someone-else.example")
    for _ in range(2):
        _assert_rejected(verifier, token, "token issuer not accepted")


def test_a_new_key_set_forgets_the_tokens_of_the_old(
    jwks: dict[str, Any], mint_es256: Mint
) -> None:
    token = mint_es256()
    TokenVerifier(jwks, issuer=ISSUER, audience=AUDIENCE).authenticate(f"Bearer {token}")
    rotated = {"keys": [key for key in jwks["keys"] if key["kid"] != EC_KID]}

    _assert_rejected(TokenVerifier(rotated, issuer=ISSUER, audience=AUDIENCE), token)


# --- rejected tokens ---------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "", "   "])
def test_missing_header(verifier: TokenVerifier, header: str | None) -> None:
    with pytest.raises(Unauthenticated, match=r"^bearer token missing$"):
        verifier.authenticate(header)


def test_scheme_without_token(verifier: TokenVerifier) -> None:
    with pytest.raises(Unauthenticated, match=r"^bearer token missing$"):
        verifier.authenticate("Bearer")


@pytest.mark.parametrize("scheme", ["Basic", "Token", "Bearer:", "DPoP"])
def test_non_bearer_scheme(verifier: TokenVerifier, mint_es256: Mint, scheme: str) -> None:
    token = mint_es256()
    with pytest.raises(Unauthenticated) as caught:
        verifier.authenticate(f"{scheme} {token}")
    assert caught.value.detail == "authorization scheme must be Bearer"
    assert token not in str(caught.value)


def test_token_without_scheme(verifier: TokenVerifier, mint_es256: Mint) -> None:
    token = mint_es256()
    with pytest.raises(Unauthenticated) as caught:
        verifier.authenticate(token)
    assert token not in str(caught.value)


def test_more_than_one_token(verifier: TokenVerifier, mint_es256: Mint) -> None:
    token = mint_es256()
    with pytest.raises(Unauthenticated) as caught:
        verifier.authenticate(f"Bearer {token} {token}")
    assert caught.value.detail == "authorization header must carry exactly one token"
    assert token not in str(caught.value)


@pytest.mark.parametrize(
    "token",
    [
        "not-a-jwt-at-all",
        "aaaaaaaa.bbbbbbbb",
        "aaaaaaaa.bbbbbbbb.cccccccc.dddddddd",
        "!!!!!!!!.########.$$$$$$$$",
        "eyJhbGciOiJFUzI1NiJ9.not_base64_json.c2lnbmF0dXJl",
        _b64url(b"[1,2,3]") + "." + _b64url(b"{}") + ".c2lnbmF0dXJlc2ln",
        _b64url(b'{"alg":"ES256","kid":' + b"[" * 5000 + b"]" * 5000 + b"}") + ".e30.c2ln",
        "x" * 9000,
        "ünïcödétoken.ünïcödétoken.ünïcödétoken",
    ],
)
def test_malformed_token(verifier: TokenVerifier, token: str) -> None:
    _assert_rejected(verifier, token)


def test_malformed_payload_with_valid_signature(
    verifier: TokenVerifier, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    token = jwt.api_jws.encode(
        b"this is not json", ec_key, algorithm="ES256", headers={"kid": EC_KID}
    )
    _assert_rejected(verifier, token, "token invalid")


def test_expired(verifier: TokenVerifier, mint_es256: Mint) -> None:
    _assert_rejected(verifier, mint_es256(exp=int(time.time()) - 120), "token expired")


def test_not_yet_valid(verifier: TokenVerifier, mint_rs256: Mint) -> None:
    _assert_rejected(verifier, mint_rs256(nbf=int(time.time()) + 600), "token not yet valid")


def test_missing_exp(verifier: TokenVerifier, mint_es256: Mint) -> None:
    _assert_rejected(verifier, mint_es256(exp=None), "token lacks the exp claim")


def test_non_numeric_exp(verifier: TokenVerifier, mint_es256: Mint) -> None:
    _assert_rejected(verifier, mint_es256(exp="tomorrow"), "token invalid")


def test_wrong_issuer(verifier: TokenVerifier, mint_es256: Mint) -> None:
    _assert_rejected(verifier, mint_es256(iss="https://evil.example"), "token issuer not accepted")


def test_missing_issuer(verifier: TokenVerifier, mint_es256: Mint) -> None:
    _assert_rejected(verifier, mint_es256(iss=None), "token lacks the iss claim")


@pytest.mark.parametrize("aud", ["other-api", ["other-api", "third-api"]])
def test_wrong_audience(verifier: TokenVerifier, mint_rs256: Mint, aud: str | list[str]) -> None:
    _assert_rejected(verifier, mint_rs256(aud=aud), "token audience not accepted")


def test_missing_audience(verifier: TokenVerifier, mint_es256: Mint) -> None:
    _assert_rejected(verifier, mint_es256(aud=None), "token lacks the aud claim")


def test_signed_by_another_ec_key_with_same_kid(verifier: TokenVerifier) -> None:
    intruder = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode(access_claims(), intruder, algorithm="ES256", headers={"kid": EC_KID})
    _assert_rejected(verifier, token, "token signature invalid")


def test_signed_by_another_rsa_key_with_same_kid(verifier: TokenVerifier) -> None:
    intruder = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(access_claims(), intruder, algorithm="RS256", headers={"kid": RSA_KID})
    _assert_rejected(verifier, token, "token signature invalid")


def test_tampered_payload(verifier: TokenVerifier, mint_es256: Mint) -> None:
    header, _, signature = mint_es256().split(".")
    forged_claims = _b64url(json.dumps(access_claims(client_id="bank-app-9")).encode())
    _assert_rejected(verifier, f"{header}.{forged_claims}.{signature}", "token signature invalid")


def test_unknown_kid(verifier: TokenVerifier, mint_es256: Mint) -> None:
    _assert_rejected(verifier, mint_es256(kid="rotated-away"), "token signing key not recognised")


def test_no_kid_with_several_keys(verifier: TokenVerifier, mint_es256: Mint) -> None:
    _assert_rejected(verifier, mint_es256(kid=None), "token has no key id")


def test_rs256_token_naming_the_ec_key(verifier: TokenVerifier, mint_rs256: Mint) -> None:
    _assert_rejected(verifier, mint_rs256(kid=EC_KID), "token algorithm not accepted")


def test_es256_token_naming_the_rsa_key(verifier: TokenVerifier, mint_es256: Mint) -> None:
    _assert_rejected(verifier, mint_es256(kid=RSA_KID), "token algorithm not accepted")


@pytest.mark.parametrize("alg", ["none", "None", "NONE", ""])
def test_alg_none(verifier: TokenVerifier, alg: str) -> None:
    token = _unsigned({"alg": alg, "typ": "JWT", "kid": EC_KID}, access_claims()) + "."
    _assert_rejected(verifier, token, "token algorithm not accepted")


@pytest.mark.parametrize("alg", ["ES384", "RS512", "PS256", "EdDSA"])
def test_other_asymmetric_algorithms(
    verifier: TokenVerifier, ec_key: ec.EllipticCurvePrivateKey, alg: str
) -> None:
    token = _unsigned({"alg": alg, "kid": EC_KID}, access_claims()) + "." + _b64url(b"\x00" * 64)
    _assert_rejected(verifier, token, "token algorithm not accepted")


@pytest.mark.parametrize(
    ("kid", "encoding", "key_format"),
    [
        (RSA_KID, serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        (RSA_KID, serialization.Encoding.PEM, serialization.PublicFormat.PKCS1),
        (RSA_KID, serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
        (EC_KID, serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        (EC_KID, serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint),
    ],
)
@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hmac_signed_with_public_key_bytes(
    verifier: TokenVerifier,
    ec_key: ec.EllipticCurvePrivateKey,
    rsa_key: rsa.RSAPrivateKey,
    kid: str,
    encoding: serialization.Encoding,
    key_format: serialization.PublicFormat,
    alg: str,
) -> None:
    public = ec_key.public_key() if kid == EC_KID else rsa_key.public_key()
    secret = public.public_bytes(encoding, key_format)
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    signing_input = _unsigned({"alg": alg, "typ": "JWT", "kid": kid}, access_claims())
    signature = hmac.new(secret, signing_input.encode("ascii"), digest).digest()
    _assert_rejected(
        verifier, f"{signing_input}.{_b64url(signature)}", "token algorithm not accepted"
    )


def test_hmac_without_kid_against_single_key_jwks(ec_key: ec.EllipticCurvePrivateKey) -> None:
    only = TokenVerifier(
        {"keys": [_jwk(ec_key.public_key(), EC_KID)]}, issuer=ISSUER, audience=AUDIENCE
    )
    secret = ec_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = _unsigned({"alg": "HS256"}, access_claims())
    signature = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
    _assert_rejected(only, f"{signing_input}.{_b64url(signature)}", "token algorithm not accepted")


@pytest.mark.parametrize("client_id", [123, "", ["bank-app-1"]])
def test_unusable_client_id(verifier: TokenVerifier, mint_es256: Mint, client_id: object) -> None:
    _assert_rejected(verifier, mint_es256(client_id=client_id, sub=None))


def test_overlong_client_id(verifier: TokenVerifier, mint_es256: Mint) -> None:
    _assert_rejected(verifier, mint_es256(client_id="c" * 256), "token client id not accepted")


def test_no_client_id_and_no_sub(verifier: TokenVerifier, mint_es256: Mint) -> None:
    _assert_rejected(verifier, mint_es256(client_id=None, sub=None), "token names no client")


def test_scope_must_be_a_string(verifier: TokenVerifier, mint_es256: Mint) -> None:
    _assert_rejected(verifier, mint_es256(scope=[REQUIRED_SCOPE]), "token scope claim malformed")


# --- authorization -----------------------------------------------------------------


@pytest.mark.parametrize("scope", [None, "", "openid profile", "mfa:device-binding:read"])
def test_missing_scope_is_forbidden(
    verifier: TokenVerifier, mint_es256: Mint, scope: str | None
) -> None:
    principal = verifier.authenticate(f"Bearer {mint_es256(scope=scope)}")
    with pytest.raises(InsufficientScope) as caught:
        verifier.authorize(principal)
    assert REQUIRED_SCOPE in caught.value.detail
    assert str(caught.value) == caught.value.detail


# --- JWKS configuration ------------------------------------------------------------


def test_jwks_file_loads(tmp_path: Path, jwks: dict[str, Any], mint_rs256: Mint) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks), encoding="utf-8")
    loaded = TokenVerifier.from_jwks_file(path, issuer=ISSUER, audience=AUDIENCE)
    assert loaded.authenticate(f"Bearer {mint_rs256()}").client_id == "bank-app-1"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "'keys' array"),
        ('{"keys": {}}', "'keys' array"),
        ('{"keys": []}', "no ES256"),
        ('{"keys": ["x"]}', "not a JSON object"),
        ('{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}', "secret key material"),
        ('{"keys": [{"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"}]}', "no ES256"),
        ('{"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]}', "not a valid ES256"),
        ('{"keys": [{"kty": "RSA", "n": "AQAB"}]}', "not a valid RS256"),
    ],
)
def test_invalid_jwks_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message) as caught:
        TokenVerifier.from_jwks_file(path, issuer=ISSUER, audience=AUDIENCE)
    assert str(path) in str(caught.value)


def test_missing_jwks_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"
    with pytest.raises(ValueError, match="cannot read JWKS file"):
        TokenVerifier.from_jwks_file(path, issuer=ISSUER, audience=AUDIENCE)


def test_jwks_with_private_key_is_refused(ec_key: ec.EllipticCurvePrivateKey) -> None:
    private_jwk = dict(ECAlgorithm.to_jwk(ec_key, as_dict=True))
    with pytest.raises(ValueError, match="private or secret key material"):
        TokenVerifier({"keys": [private_jwk]}, issuer=ISSUER, audience=AUDIENCE)


def test_jwks_with_duplicate_kid_is_refused(
    ec_key: ec.EllipticCurvePrivateKey, rsa_key: rsa.RSAPrivateKey
) -> None:
    keys = [_jwk(ec_key.public_key(), "same"), _jwk(rsa_key.public_key(), "same")]
    with pytest.raises(ValueError, match="more than one signing key"):
        TokenVerifier({"keys": keys}, issuer=ISSUER, audience=AUDIENCE)


def test_jwks_with_short_rsa_key_is_refused() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 (the point of the test)
    with pytest.raises(ValueError, match="1024-bit RSA key"):
        TokenVerifier({"keys": [_jwk(weak.public_key(), "weak")]}, issuer=ISSUER, audience=AUDIENCE)


def test_unusable_keys_are_skipped(
    ec_key: ec.EllipticCurvePrivateKey, rsa_key: rsa.RSAPrivateKey, mint_es256: Mint
) -> None:
    p384 = _jwk(ec.generate_private_key(ec.SECP384R1()).public_key(), "p384")
    encryption = _jwk(rsa_key.public_key(), "enc") | {"use": "enc"}
    ps256 = _jwk(rsa_key.public_key(), "ps") | {"alg": "PS256"}
    wrapped = _jwk(rsa_key.public_key(), "wrap") | {"key_ops": ["wrapKey"]}
    keys = [p384, encryption, ps256, wrapped, _jwk(ec_key.public_key(), EC_KID)]
    mixed = TokenVerifier({"keys": keys}, issuer=ISSUER, audience=AUDIENCE)
    assert mixed.authenticate(f"Bearer {mint_es256()}").client_id == "bank-app-1"
    # The one usable key is also the default for a token without kid.
    assert mixed.authenticate(f"Bearer {mint_es256(kid=None)}").client_id == "bank-app-1"
    _assert_rejected(mixed, mint_es256(kid="p384"), "token signing key not recognised")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"issuer": "", "audience": AUDIENCE},
        {"issuer": ISSUER, "audience": ""},
        {"issuer": ISSUER, "audience": AUDIENCE, "leeway_seconds": -1},
    ],
)
def test_invalid_settings(jwks: dict[str, Any], kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must not be"):
        TokenVerifier(jwks, **kwargs)


# --- development key tool ----------------------------------------------------------


@pytest.fixture(scope="module")
def devkeys() -> ModuleType:
    return devkeys_module


def test_devkeys_ensure_is_idempotent(devkeys: ModuleType, tmp_path: Path) -> None:
    ensure_keys: Callable[[Path], Path] = devkeys.ensure_keys
    directory = tmp_path / "var" / "dev"
    jwks_path = ensure_keys(directory)
    key_path = directory / "signing-key.pem"
    assert jwks_path == directory / "jwks.json"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    key_pem, jwks_text = key_path.read_bytes(), jwks_path.read_text(encoding="utf-8")

    assert ensure_keys(directory) == jwks_path
    assert key_path.read_bytes() == key_pem
    assert jwks_path.read_text(encoding="utf-8") == jwks_text

    (key,) = json.loads(jwks_text)["keys"]
    assert key["kty"] == "EC"
    assert key["crv"] == "P-256"
    assert key["kid"]
    assert "d" not in key


def test_devkeys_repairs_a_stale_jwks(devkeys: ModuleType, tmp_path: Path) -> None:
    ensure_keys: Callable[[Path], Path] = devkeys.ensure_keys
    jwks_path = ensure_keys(tmp_path)
    good = jwks_path.read_text(encoding="utf-8")
    jwks_path.write_text('{"keys": []}', encoding="utf-8")
    ensure_keys(tmp_path)
    assert jwks_path.read_text(encoding="utf-8") == good


def test_devkeys_minted_token_verifies(devkeys: ModuleType, tmp_path: Path) -> None:
    mint_token: Callable[..., str] = devkeys.mint_token
    token = mint_token(
        tmp_path,
        client_id="bank-app-1",
        scope=REQUIRED_SCOPE,
        ttl=600,
        issuer="device-binding-dev",
        audience="device-binding",
    )
    loaded = TokenVerifier.from_jwks_file(
        tmp_path / "jwks.json", issuer="device-binding-dev", audience="device-binding"
    )
    principal = loaded.authenticate(f"Bearer {token}")
    assert principal == Principal(client_id="bank-app-1", scopes=frozenset({REQUIRED_SCOPE}))
    loaded.authorize(principal)
    assert jwt.get_unverified_header(token)["alg"] == "ES256"


def test_devkeys_cli(
    devkeys: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main: Callable[[list[str]], int] = devkeys.main
    assert main(["ensure", "--dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "jwks.json")

    argv = ["mint", "--dir", str(tmp_path), "--client-id", "bank-app-7", "--scope", "openid"]
    assert main([*argv, "--ttl", "60", "--issuer", "iss-x", "--audience", "aud-y"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    token = out.strip()
    loaded = TokenVerifier.from_jwks_file(tmp_path / "jwks.json", issuer="iss-x", audience="aud-y")
    principal = loaded.authenticate(f"Bearer {token}")
    assert principal == Principal(client_id="bank-app-7", scopes=frozenset({"openid"}))
    with pytest.raises(InsufficientScope):
        loaded.authorize(principal)


def test_devkeys_cli_rejects_bad_ttl(devkeys: ModuleType, tmp_path: Path) -> None:
    main: Callable[[list[str]], int] = devkeys.main
    with pytest.raises(SystemExit) as caught:
        main(["mint", "--dir", str(tmp_path), "--client-id", "x", "--ttl", "0"])
    assert caught.value.code == 2
