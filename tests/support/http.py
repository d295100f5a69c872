"""The whole product in one test process: a worker and API replicas on a real broker,
sharing per-test topics; callers talk HTTP to the API through httpx."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from api.admin import create_admin_app
from api.app import create_app
from api.settings import Settings
from harness import devkeys
from worker.settings import WorkerSettings


class Tokens:
    """Development-style signing key in a temp folder; mints bearer tokens per client."""

    def __init__(self, directory: Path) -> None:
        self.devkeys = devkeys
        self.directory = directory
        self.jwks_file: Path = self.devkeys.ensure_keys(directory)

    def headers(
        self, client_id: str = "bank-1", scope: str = "mfa:device-binding"
    ) -> dict[str, str]:
        token = self.devkeys.mint_token(self.directory, client_id=client_id, scope=scope)
        return {"Authorization": f"Bearer {token}"}


def api_settings(worker: WorkerSettings, tokens: Tokens, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": worker.kafka_bootstrap_servers,
        "auth_jwks_file": tokens.jwks_file,
        "auth_issuer": tokens.devkeys.DEFAULT_ISSUER,
        "auth_audience": tokens.devkeys.DEFAULT_AUDIENCE,
        "commands_topic": worker.commands_topic,
        "replies_topic": worker.replies_topic,
        "reply_wait_seconds": 15.0,
        # In-process tests drive one client hard: its rate and the in-flight bound are the
        # subject of their own tests (tests/api), not of these.
        "client_rate_per_second": 1_000_000.0,
        "client_rate_burst": 1_000_000,
        "max_in_flight": 10_000,
    }
    values.update(overrides)
    return Settings(**values)


ADMIN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


@asynccontextmanager
async def api_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the API and, on the paths of its admin port (the probes, the metrics),
    of its admin app: one client for both, as tests ask for either."""
    app = create_app(settings)
    admin = create_admin_app(app)

    async def both(scope: Any, receive: Any, send: Any) -> None:
        target = admin if scope.get("path") in ADMIN_PATHS else app
        await target(scope, receive, send)

    async with AsyncExitStack() as stack:
        await stack.enter_async_context(app.router.lifespan_context(app))
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=both), base_url="http://api.test", timeout=30
        )
        yield await stack.enter_async_context(client)
