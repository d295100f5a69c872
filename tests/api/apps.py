"""Apps under test: their settings, per-test topics, and apps run through their lifespan."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from fastapi import FastAPI

from api.admin import create_admin_app
from api.app import create_app
from api.gateway import KafkaGateway
from api.settings import Settings

MakeSettings = Callable[..., Settings]


@dataclass(frozen=True)
class Topics:
    commands: str
    replies: str


@dataclass(frozen=True)
class RunningApp:
    app: FastAPI
    client: httpx.AsyncClient
    settings: Settings
    # The admin port's: /healthz, /readyz, /metrics.
    admin: httpx.AsyncClient

    @property
    def gateway(self) -> KafkaGateway:
        gateway = self.app.state.gateway
        assert isinstance(gateway, KafkaGateway)
        return gateway


def instance_id(name: str) -> str:
    return f"api-test-{name}-{uuid.uuid4().hex[:8]}"


@asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[RunningApp]:
    """``create_app(settings)`` with its lifespan entered, and clients of it and of its admin
    app."""
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api.test"
        ) as client,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_admin_app(app)), base_url="http://admin.test"
        ) as admin,
    ):
        yield RunningApp(app=app, client=client, settings=settings, admin=admin)
