"""Bearer-token authentication for the HTTP front (SPEC §3).

Pure and framework-free: the HTTP layer calls :meth:`TokenVerifier.authenticate`
and :meth:`TokenVerifier.authorize` and maps the two failures to its error bodies::

    AuthError                 carries `detail`, a short generic message
    ├── Unauthenticated       401: missing, malformed, expired or wrongly signed token
    └── InsufficientScope     403: valid token without the required scope

A `detail` never contains the token or any part of it, and the PyJWT exception that
caused a failure is not chained, so a logged traceback cannot leak a bearer token.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt import PyJWK

REQUIRED_SCOPE: Final = "mfa:device-binding"

# Tokens longer than this are refused before any parsing or crypto work.
MAX_TOKEN_LENGTH: Final = 8192
MAX_CLIENT_ID_LENGTH: Final = 255
MIN_RSA_KEY_BITS: Final = 2048

# The only (algorithm, key) pairings accepted. Fixed here, never taken from the
# token, so `none`, HS* and RS/ES confusion are impossible (RFC 8725 §2.1, §3.1).
_ES256: Final = "ES256"
_RS256: Final = "RS256"
_REQUIRED_CLAIMS: Final = ("exp", "iss", "aud")
# Tokens verified already, kept until they expire (see TokenVerifier.authenticate).
_REMEMBERED_TOKENS: Final = 10_000


class AuthError(Exception):
    """Root of the authentication errors; `detail` is safe to show to the caller."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Unauthenticated(AuthError):
    """No usable bearer token: answer 401."""


class InsufficientScope(AuthError):
    """The token is valid but lacks :data:`REQUIRED_SCOPE`: answer 403."""


@dataclass(frozen=True)
class Principal:
    """The authenticated API client."""

    client_id: str
    scopes: frozenset[str]


class TokenVerifier:
    """Verifies JWT bearer tokens against a fixed JWKS (ES256 with P-256, RS256 with RSA).

    The JWKS is parsed once, here; a JWKS with no usable signing key, private key
    material, duplicate `kid`s or a malformed key raises :class:`ValueError`.
    Keys of other types (e.g. P-384, Ed25519, `use: enc`) are skipped, so an
    identity provider's full JWKS can be configured as is.
    """

    def __init__(
        self,
        jwks: Mapping[str, Any],
        *,
        issuer: str,
        audience: str,
        leeway_seconds: int = 30,
    ) -> None:
        if not issuer:
            raise ValueError("issuer must not be empty")
        if not audience:
            raise ValueError("audience must not be empty")
        if leeway_seconds < 0:
            raise ValueError("leeway_seconds must not be negative")
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway_seconds
        self._keys = _parse_jwks(jwks)
        self._keys_by_kid = {key.key_id: key for key in self._keys if key.key_id is not None}
        # A bank's backend sends one token with many requests until it expires; checking
        # it again (base64 scan, JSON, the signature) was most of a request's own CPU. Each
        # JWKS (re)load makes a new verifier, so a rotated-out key's tokens are forgotten.
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    @classmethod
    def from_jwks_file(
        cls,
        path: Path,
        *,
        issuer: str,
        audience: str,
        leeway_seconds: int = 30,
    ) -> TokenVerifier:
        """Read a JWKS JSON file; any problem with it raises :class:`ValueError`."""
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot read JWKS file {path}: {exc.strerror or exc}") from exc
        except UnicodeDecodeError as exc:
            raise ValueError(f"JWKS file {path} is not UTF-8 text") from exc
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"JWKS file {path} is not valid JSON: {exc}") from exc
        try:
            return cls(document, issuer=issuer, audience=audience, leeway_seconds=leeway_seconds)
        except ValueError as exc:
            raise ValueError(f"JWKS file {path}: {exc}") from exc

    def authenticate(self, authorization_header: str | None) -> Principal:
        """Verify an ``Authorization`` header value and return the client it names.

        Raises :class:`Unauthenticated` on any failure.
        """
        token = _bearer_token(authorization_header)
        remembered = self._verified.get(token)
        if remembered is not None:
            principal, valid_until = remembered
            if time.time() <= valid_until:
                return principal
            del self._verified[token]  # expired: decoding it again says so
        key = self._select_key(token)
        claims = self._decode(token, key)
        principal = Principal(client_id=_client_id(claims), scopes=_scopes(claims))
        # Valid from now until its expiry (with the same leeway); `nbf` has passed already.
        self._verified[token] = (principal, float(claims["exp"]) + self._leeway)
        if len(self._verified) > _REMEMBERED_TOKENS:
            self._verified.popitem(last=False)
        return principal

    def authorize(self, principal: Principal) -> None:
        """Raise :class:`InsufficientScope` unless the principal holds :data:`REQUIRED_SCOPE`."""
        if REQUIRED_SCOPE not in principal.scopes:
            raise InsufficientScope(f"token lacks the required scope {REQUIRED_SCOPE}")

    def _select_key(self, token: str) -> PyJWK:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("token malformed") from None
        alg = header.get("alg")
        if alg not in (_ES256, _RS256):
            raise Unauthenticated("token algorithm not accepted")
        kid = header.get("kid")
        if kid is None:
            if len(self._keys) != 1:
                raise Unauthenticated("token has no key id")
            key = self._keys[0]
        else:
            found = self._keys_by_kid.get(kid) if isinstance(kid, str) else None
            if found is None:
                raise Unauthenticated("token signing key not recognised")
            key = found
        if alg != key.algorithm_name:
            raise Unauthenticated("token algorithm not accepted")
        return key

    def _decode(self, token: str, key: PyJWK) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                key=key,
                algorithms=[key.algorithm_name],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={
                    "require": list(_REQUIRED_CLAIMS),
                    "enforce_minimum_key_length": True,
                },
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("token expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated("token not yet valid") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated("token issuer not accepted") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated("token audience not accepted") from None
        except jwt.MissingRequiredClaimError as exc:
            # `claim` is one of our own required names, never token text.
            claim = exc.claim if exc.claim in _REQUIRED_CLAIMS else "required"
            raise Unauthenticated(f"token lacks the {claim} claim") from None
        except jwt.InvalidSignatureError:
            raise Unauthenticated("token signature invalid") from None
        except jwt.InvalidAlgorithmError:
            raise Unauthenticated("token algorithm not accepted") from None
        except jwt.PyJWTError:
            raise Unauthenticated("token invalid") from None
        except (ValueError, TypeError, OverflowError, RecursionError):
            # Defence in depth: hostile input must end as a 401, never a 500.
            raise Unauthenticated("token invalid") from None


def _bearer_token(authorization_header: str | None) -> str:
    if authorization_header is None or not authorization_header.strip():
        raise Unauthenticated("bearer token missing")
    parts = authorization_header.split()
    if parts[0].lower() != "bearer":
        raise Unauthenticated("authorization scheme must be Bearer")
    if len(parts) == 1:
        raise Unauthenticated("bearer token missing")
    if len(parts) > 2:
        raise Unauthenticated("authorization header must carry exactly one token")
    token = parts[1]
    if len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        raise Unauthenticated("token malformed")
    return token


def _client_id(claims: Mapping[str, Any]) -> str:
    value = claims.get("client_id")
    if value is None:
        value = claims.get("sub")
    if not isinstance(value, str) or not value:
        raise Unauthenticated("token names no client")
    if len(value) > MAX_CLIENT_ID_LENGTH:
        raise Unauthenticated("token client id not accepted")
    return value


def _scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    value = claims.get("scope")
    if value is None:
        return frozenset()
    if not isinstance(value, str):
        raise Unauthenticated("token scope claim malformed")
    return frozenset(value.split())


def _parse_jwks(jwks: Mapping[str, Any]) -> list[PyJWK]:
    if not isinstance(jwks, Mapping):
        raise ValueError("JWKS must be a JSON object with a 'keys' array")
    entries = jwks.get("keys")
    if not isinstance(entries, list):
        raise ValueError("JWKS must be a JSON object with a 'keys' array")

    keys: list[PyJWK] = []
    seen_kids: set[str] = set()
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ValueError(f"JWKS key #{index} is not a JSON object")
        if any(member in entry for member in ("d", "p", "q", "k")):
            raise ValueError(
                f"JWKS key #{index} contains private or secret key material; "
                "configure public keys only"
            )
        algorithm = _algorithm_for(entry)
        if algorithm is None:
            continue
        kid = entry.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise ValueError(f"JWKS key #{index} has a non-string 'kid'")
        if kid is not None:
            if kid in seen_kids:
                raise ValueError(f"JWKS has more than one signing key with kid {kid!r}")
            seen_kids.add(kid)
        try:
            key = PyJWK(entry, algorithm=algorithm)
        except jwt.PyJWTError as exc:
            raise ValueError(f"JWKS key #{index} is not a valid {algorithm} key: {exc}") from exc
        if isinstance(key.key, RSAPublicKey) and key.key.key_size < MIN_RSA_KEY_BITS:
            raise ValueError(
                f"JWKS key #{index} is a {key.key.key_size}-bit RSA key; "
                f"at least {MIN_RSA_KEY_BITS} bits are required"
            )
        keys.append(key)

    if not keys:
        raise ValueError("JWKS contains no ES256 (EC P-256) or RS256 (RSA) signing key")
    return keys


def _algorithm_for(entry: Mapping[str, Any]) -> str | None:
    """The one algorithm this JWK may verify, or None if we do not use the key."""
    if entry.get("use", "sig") != "sig":
        return None
    key_ops = entry.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        return None
    kty = entry.get("kty")
    if kty == "EC" and entry.get("crv") == "P-256":
        algorithm = _ES256
    elif kty == "RSA":
        algorithm = _RS256
    else:
        return None
    declared = entry.get("alg")
    if declared is not None and declared != algorithm:
        return None
    return algorithm
