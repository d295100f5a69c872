"""The claims of a valid access token for this service, shared by every test that mints one."""

from __future__ import annotations

import time
from typing import Any

from api.auth import REQUIRED_SCOPE

ISSUER = "https://idp.example.test"
AUDIENCE = "device-binding"
CLIENT_ID = "bank-app-1"


def access_claims(**overrides: Any) -> dict[str, Any]:
    """Valid claims, five minutes from expiry; an override of ``None`` drops the claim."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "subject-1",
        "client_id": CLIENT_ID,
        "scope": REQUIRED_SCOPE,
        "iat": now,
        "exp": now + 300,
    }
    for name, value in overrides.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims
