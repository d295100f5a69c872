"""Signing keys from a JWKS URL, re-read in the background (key rotation), or from a file."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from pydantic import ValidationError

from api.settings import Settings
from tests.api.apps import running_app
from tests.api.tokens import KID, TokenMint
from tests.support.claims import AUDIENCE, ISSUER

DEVICE_URL = f"/v1/mfa/devices/{uuid.uuid4()}"


def _jwks(key: ec.EllipticCurvePrivateKey) -> bytes:
    jwk = dict(ECAlgorithm.to_jwk(key.public_key(), as_dict=True))
    jwk["kid"] = KID
    return json.dumps({"keys": [jwk]}).encode()


class _JwksServer(ThreadingHTTPServer):
    document = b"{}"


class _Handler(BaseHTTPRequestHandler):
    server: _JwksServer

    def do_GET(self) -> None:
        body = self.server.document
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet


@pytest.fixture
def jwks_server() -> Iterator[_JwksServer]:
    server = _JwksServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _settings(**values: Any) -> Settings:
    # Kafka is unreachable on purpose: a request that passes authentication answers 503,
    # one that does not answers 401, and nothing else is needed to tell them apart.
    return Settings.model_validate(
        {
            "auth_issuer": ISSUER,
            "auth_audience": AUDIENCE,
            "kafka_bootstrap_servers": "127.0.0.1:9",
            "kafka_connect_timeout_seconds": 0.2,
            **values,
        }
    )


async def test_keys_from_a_url_follow_its_rotation(jwks_server: _JwksServer) -> None:
    old, new = TokenMint(), TokenMint()
    jwks_server.document = _jwks(old.key)
    url = f"http://127.0.0.1:{jwks_server.server_address[1]}/jwks.json"
    settings = _settings(auth_jwks_url=url, auth_jwks_refresh_seconds=0.1)

    async with running_app(settings) as api:
        assert (await api.client.get(DEVICE_URL, headers=old.headers())).status_code == 503
        assert (await api.client.get(DEVICE_URL, headers=new.headers())).status_code == 401

        jwks_server.document = _jwks(new.key)
        async with asyncio.timeout(10):
            while (await api.client.get(DEVICE_URL, headers=new.headers())).status_code != 503:
                await asyncio.sleep(0.05)
        assert (await api.client.get(DEVICE_URL, headers=old.headers())).status_code == 401

        # A key set that breaks is not taken: the keys in use stay.
        jwks_server.document = b"not json"
        await asyncio.sleep(0.3)
        assert (await api.client.get(DEVICE_URL, headers=new.headers())).status_code == 503


async def test_unreadable_url_at_start_up_refuses_to_start() -> None:
    settings = _settings(auth_jwks_url="http://127.0.0.1:9/jwks.json")
    with pytest.raises(ValueError, match="cannot read JWKS"):
        async with running_app(settings):
            pass


async def test_keys_from_a_file(tmp_path: Path) -> None:
    mint = TokenMint()
    settings = _settings(auth_jwks_file=mint.write_jwks(tmp_path / "jwks.json"))
    async with running_app(settings) as api:
        assert (await api.client.get(DEVICE_URL, headers=mint.headers())).status_code == 503


@pytest.mark.parametrize(
    "values",
    [{}, {"auth_jwks_file": "/x/jwks.json", "auth_jwks_url": "https://idp.test/jwks.json"}],
)
def test_exactly_one_key_source(values: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="exactly one of AUTH_JWKS_FILE and AUTH_JWKS_URL"):
        _settings(**values)
