"""Fixtures of the HTTP front's tests: tokens, settings, and an app whose gateway is fake."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api.admin import create_admin_app
from api.app import create_app
from api.auth import TokenVerifier
from api.dependencies import get_gateway, get_verifier
from api.settings import Settings
from harness.topics import create_topics, unique_name
from tests.api.apps import MakeSettings, Topics
from tests.api.fakes import FakeGateway
from tests.api.tokens import TokenMint
from tests.support.claims import AUDIENCE, ISSUER


@pytest.fixture(scope="session")
def mint() -> TokenMint:
    return TokenMint()


@pytest.fixture(scope="session")
def jwks_file(mint: TokenMint, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return mint.write_jwks(tmp_path_factory.mktemp("jwks") / "jwks.json")


@pytest.fixture
def make_settings(jwks_file: Path) -> MakeSettings:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "auth_jwks_file": jwks_file,
            "auth_issuer": ISSUER,
            "auth_audience": AUDIENCE,
        }
        values.update(overrides)
        return Settings.model_validate(values)

    return make


@pytest.fixture
def gateway() -> FakeGateway:
    return FakeGateway()


MakeApp = Callable[..., FastAPI]


@pytest.fixture
def make_unit_app(make_settings: MakeSettings, gateway: FakeGateway, jwks_file: Path) -> MakeApp:
    """The real app without Kafka, on settings overridden as given: its lifespan is not run,
    the gateway is a fake."""

    def make(**overrides: Any) -> FastAPI:
        app = create_app(make_settings(**overrides))
        verifier = TokenVerifier.from_jwks_file(jwks_file, issuer=ISSUER, audience=AUDIENCE)
        app.dependency_overrides[get_gateway] = lambda: gateway
        app.dependency_overrides[get_verifier] = lambda: verifier
        return app

    return make


@pytest.fixture
def unit_app(make_unit_app: MakeApp) -> FastAPI:
    """The real app without Kafka, on the default settings."""
    return make_unit_app()


@pytest.fixture
async def client(unit_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=unit_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        yield client


@pytest.fixture
def admin_app(unit_app: FastAPI, gateway: FakeGateway) -> FastAPI:
    """The unit app's admin app (probes, metrics), the fake gateway in their shared state as
    the lifespan would put the real one."""
    unit_app.state.gateway = gateway
    return create_admin_app(unit_app)


@pytest.fixture
async def admin(admin_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the admin port."""
    transport = httpx.ASGITransport(app=admin_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://admin.test") as client:
        yield client


@pytest.fixture
async def topics(kafka_bootstrap: str) -> Topics:
    """A fresh commands topic and replies topic (3 partitions each) on the real broker."""
    names = Topics(commands=unique_name("api-commands"), replies=unique_name("api-replies"))
    await create_topics(kafka_bootstrap, names.commands, names.replies, partitions=3)
    return names


@pytest.fixture
def kafka_settings(
    make_settings: MakeSettings, kafka_bootstrap: str, topics: Topics
) -> MakeSettings:
    """Settings of an app on the real broker and this test's topics."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "kafka_bootstrap_servers": kafka_bootstrap,
            "commands_topic": topics.commands,
            "replies_topic": topics.replies,
            "kafka_connect_timeout_seconds": 30.0,
            "reply_wait_seconds": 30.0,
            "publish_timeout_seconds": 30.0,
        }
        values.update(overrides)
        return make_settings(**values)

    return make
