"""Development signing key and token minting. FOR LOCAL DEVELOPMENT ONLY.

Never use this key or these tokens outside a developer machine: the private key sits
unencrypted on disk and anyone who can read it can mint tokens for any client.

    python -m harness.devkeys ensure [--dir var/dev]
        Create, if absent, an ES256 (P-256) private key ``signing-key.pem`` (mode 0600)
        and the matching public ``jwks.json``; print the JWKS path. Idempotent.

    python -m harness.devkeys mint --client-id bank-app-1 [--scope ...] [--ttl 3600]
        Ensure the key, then print a signed access token (and nothing else) to stdout.

Point the API at the key with ``AUTH_JWKS_FILE=var/dev/jwks.json``,
``AUTH_ISSUER=device-binding-dev`` and ``AUTH_AUDIENCE=device-binding``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

KEY_FILE: Final = "signing-key.pem"
JWKS_FILE: Final = "jwks.json"
DEFAULT_DIR: Final = Path(__file__).resolve().parents[1] / "var" / "dev"
DEFAULT_ISSUER: Final = "device-binding-dev"
DEFAULT_AUDIENCE: Final = "device-binding"
DEFAULT_SCOPE: Final = "mfa:device-binding"
DEFAULT_TTL_SECONDS: Final = 3600


def ensure_keys(directory: Path = DEFAULT_DIR) -> Path:
    """Create the signing key and JWKS in ``directory`` if absent; return the JWKS path.

    An existing key is kept; the JWKS is rewritten only if it does not match it.
    """
    directory.mkdir(parents=True, exist_ok=True)
    private_key = _load_or_create_key(directory / KEY_FILE)
    jwks_path = directory / JWKS_FILE
    expected = json.dumps({"keys": [_public_jwk(private_key.public_key())]}, indent=2) + "\n"
    try:
        current: str | None = jwks_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        current = None
    if current != expected:
        _write_atomically(jwks_path, expected)
    return jwks_path


def mint_token(
    directory: Path = DEFAULT_DIR,
    *,
    client_id: str,
    scope: str = DEFAULT_SCOPE,
    ttl: int = DEFAULT_TTL_SECONDS,
    issuer: str = DEFAULT_ISSUER,
    audience: str = DEFAULT_AUDIENCE,
) -> str:
    """Sign an ES256 access token for ``client_id`` with the development key."""
    if not client_id:
        raise ValueError("client_id must not be empty")
    if ttl <= 0:
        raise ValueError("ttl must be positive")
    ensure_keys(directory)
    private_key = _load_or_create_key(directory / KEY_FILE)
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": client_id,
        "client_id": client_id,
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "jti": uuid.uuid4().hex,
    }
    if scope:
        claims["scope"] = scope
    kid = _thumbprint(private_key.public_key())
    return jwt.encode(claims, private_key, algorithm="ES256", headers={"kid": kid, "typ": "at+jwt"})


def _load_or_create_key(path: Path) -> ec.EllipticCurvePrivateKey:
    if not path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            # O_EXCL: two concurrent `ensure` runs cannot overwrite each other's key.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
            return key
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, ec.EllipticCurvePrivateKey) or not isinstance(
        loaded.curve, ec.SECP256R1
    ):
        raise ValueError(f"{path} is not an EC P-256 private key; delete it to regenerate")
    return loaded


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _coordinates(public_key: ec.EllipticCurvePublicKey) -> tuple[str, str]:
    numbers = public_key.public_numbers()
    return _b64url(numbers.x.to_bytes(32, "big")), _b64url(numbers.y.to_bytes(32, "big"))


def _thumbprint(public_key: ec.EllipticCurvePublicKey) -> str:
    """RFC 7638 JWK thumbprint: a stable `kid` derived from the key itself."""
    x, y = _coordinates(public_key)
    canonical = json.dumps(
        {"crv": "P-256", "kty": "EC", "x": x, "y": y}, separators=(",", ":"), sort_keys=True
    )
    return _b64url(hashlib.sha256(canonical.encode("ascii")).digest())


def _public_jwk(public_key: ec.EllipticCurvePublicKey) -> dict[str, str]:
    x, y = _coordinates(public_key)
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": x,
        "y": y,
        "use": "sig",
        "alg": "ES256",
        "kid": _thumbprint(public_key),
    }


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="devkeys.py",
        description="Development signing key and token minting (local development only).",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def add_dir(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--dir",
            type=Path,
            default=DEFAULT_DIR,
            help="directory holding signing-key.pem and jwks.json (default: var/dev)",
        )

    ensure = commands.add_parser("ensure", help="create the dev key and JWKS if absent")
    add_dir(ensure)

    mint = commands.add_parser("mint", help="print a signed dev access token")
    add_dir(mint)
    mint.add_argument("--client-id", required=True, help="client_id and sub of the token")
    mint.add_argument("--scope", default=DEFAULT_SCOPE, help="space-separated scopes")
    mint.add_argument("--ttl", type=_positive_int, default=DEFAULT_TTL_SECONDS, help="seconds")
    mint.add_argument("--issuer", default=DEFAULT_ISSUER)
    mint.add_argument("--audience", default=DEFAULT_AUDIENCE)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "ensure":
            print(ensure_keys(args.dir))
        else:
            print(
                mint_token(
                    args.dir,
                    client_id=args.client_id,
                    scope=args.scope,
                    ttl=args.ttl,
                    issuer=args.issuer,
                    audience=args.audience,
                )
            )
    except (OSError, ValueError) as exc:
        print(f"devkeys: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
