"""A throw-away ES256 signing key, its JWKS file and a token minter for the API tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from tests.support.claims import access_claims

KID = "api-test-1"


class TokenMint:
    """Signs JWTs with a fresh P-256 key; :meth:`write_jwks` publishes its public half."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())

    def write_jwks(self, path: Path) -> Path:
        jwk = dict(ECAlgorithm.to_jwk(self.key.public_key(), as_dict=True))
        jwk["kid"] = KID
        path.write_text(json.dumps({"keys": [jwk]}), encoding="utf-8")
        return path

    def token(self, *, key: ec.EllipticCurvePrivateKey | None = None, **overrides: Any) -> str:
        """A valid token, with claims overridden (``None`` drops a claim)."""
        claims = access_claims(**overrides)
        return jwt.encode(claims, key or self.key, algorithm="ES256", headers={"kid": KID})

    def headers(self, **overrides: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(**overrides)}"}
