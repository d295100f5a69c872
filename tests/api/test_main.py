"""``python -m api`` as deployed: the API on its port, the probes and metrics on the admin
port and only there, request heads bounded, and SIGTERM answered. Kafka is left unreachable:
the replica starts anyway (SPEC §7), and none of this needs a broker."""

from __future__ import annotations

import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.ports import free_port
from harness.processes import Children
from harness.stack import wait_until_ready
from tests.api.tokens import TokenMint
from tests.support.claims import AUDIENCE, ISSUER

pytestmark = pytest.mark.slow


@pytest.fixture
def unreachable_kafka() -> Iterator[str]:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))  # bound, not listening: connecting is refused
        yield f"127.0.0.1:{held.getsockname()[1]}"


async def test_the_api_and_its_admin_port(
    tmp_path: Path, jwks_file: Path, mint: TokenMint, unreachable_kafka: str
) -> None:
    port, admin_port = free_port(), free_port()
    with Children(tmp_path / "logs") as children:
        children.spawn(
            "api",
            ["-m", "api"],
            env={
                "AUTH_JWKS_FILE": str(jwks_file),
                "AUTH_ISSUER": ISSUER,
                "AUTH_AUDIENCE": AUDIENCE,
                "KAFKA_BOOTSTRAP_SERVERS": unreachable_kafka,
                "KAFKA_CONNECT_TIMEOUT_SECONDS": "0.5",
                "API_PORT": str(port),
                "API_ADMIN_PORT": str(admin_port),
            },
            role="api",
        )
        admin = f"http://127.0.0.1:{admin_port}"
        await wait_until_ready(f"{admin}/healthz", within=30, children=children)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as api:
            # The API's port answers once the start-up wait for Kafka is over.
            await wait_until_ready(f"http://127.0.0.1:{port}/openapi.json", within=30)
            async with httpx.AsyncClient(base_url=admin) as probes:
                assert (await probes.get("/readyz")).status_code == 503  # no Kafka
                metrics = await probes.get("/metrics")
                assert "device_binding_limited_total" in metrics.text
            for path in ("/healthz", "/readyz", "/metrics"):
                assert (await api.get(path)).status_code == 404, path
            url = "/v1/mfa/challenges/signatures/6f1d8f3e-52c9-4a8e-9a57-0d5b8a3f4c21"
            assert (await api.get(url, headers=mint.headers())).status_code == 503
            too_large = await api.get(url, headers={"X-Padding": "a" * 40_000})
            assert too_large.status_code == 431
        code = children.terminate("api", timeout=30)
        # uvicorn stops gracefully, then re-raises the signal it caught.
        assert code in (0, -signal.SIGTERM), children["api"].log_tail()
        log = children["api"].log_path.read_text()
        assert "Application shutdown complete" in log
