"""The admin port's app: the probes and the metrics, off the API's port; readiness asks
Kafka at most once a second however often it is probed."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI

from api.admin import create_admin_app
from api.routes.health import CachedCheck
from tests.api.fakes import FakeGateway
from tests.api.shapes import assert_flat


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class CountingGateway(FakeGateway):
    """Counts the readiness checks, each taking a moment, as a metadata request does."""

    def __init__(self) -> None:
        super().__init__()
        self.checks = 0

    async def reachable(self) -> bool:
        self.checks += 1
        await asyncio.sleep(0.01)
        return self.ready


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
async def test_probes_and_metrics_are_on_the_admin_port_only(
    client: httpx.AsyncClient, admin: httpx.AsyncClient, path: str
) -> None:
    assert (await admin.get(path)).status_code == 200
    assert_flat(await client.get(path), 404, "not_found")


async def test_the_admin_port_serves_nothing_else(admin: httpx.AsyncClient) -> None:
    for path in ("/openapi.json", "/docs", "/v1/mfa/devices"):
        assert_flat(await admin.get(path), 404, "not_found")
    assert (await admin.get("/healthz")).json() == {"status": "ok"}


async def test_readiness_follows_the_gateway_within_a_second(
    admin_app: FastAPI, admin: httpx.AsyncClient, gateway: FakeGateway
) -> None:
    clock = Clock()
    admin_app.state.readiness = CachedCheck(1.0, clock=clock)
    assert (await admin.get("/readyz")).json() == {"status": "ok"}
    gateway.ready = False
    clock.now += 0.9  # the answer is still the one of 0.9 s ago
    assert (await admin.get("/readyz")).status_code == 200
    clock.now += 0.1
    response = await admin.get("/readyz")
    assert_flat(response, 503, "service_unavailable")
    assert response.headers["Retry-After"] == "1"
    # Liveness is not readiness.
    assert (await admin.get("/healthz")).status_code == 200


async def test_a_probe_storm_asks_kafka_once_a_second(unit_app: FastAPI) -> None:
    gateway = CountingGateway()
    unit_app.state.gateway = gateway
    admin_app = create_admin_app(unit_app)
    clock = Clock()
    admin_app.state.readiness = CachedCheck(1.0, clock=clock)
    transport = httpx.ASGITransport(app=admin_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://admin.test") as admin:
        # 50 at once share one check; 50 more within the second ask nothing.
        answers = await asyncio.gather(*(admin.get("/readyz") for _ in range(50)))
        assert {response.status_code for response in answers} == {200}
        assert gateway.checks == 1
        clock.now += 0.5
        answers = await asyncio.gather(*(admin.get("/readyz") for _ in range(50)))
        assert gateway.checks == 1
        clock.now += 0.5
        await admin.get("/readyz")
        assert gateway.checks == 2


async def test_not_ready_until_the_lifespan_has_started_the_gateway(unit_app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=create_admin_app(unit_app))
    async with httpx.AsyncClient(transport=transport, base_url="http://admin.test") as admin:
        assert (await admin.get("/healthz")).status_code == 200
        assert_flat(await admin.get("/readyz"), 503, "service_unavailable")


async def test_a_failing_check_is_not_remembered() -> None:
    cache = CachedCheck(1.0, clock=Clock())
    calls = 0

    async def flaky() -> bool:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("metadata request failed")
        return True

    with pytest.raises(RuntimeError):
        await cache(flaky)
    assert await cache(flaky) is True
    assert await cache(flaky) is True
    assert calls == 2


async def test_a_probe_that_goes_away_does_not_cancel_the_shared_check() -> None:
    cache = CachedCheck(1.0, clock=Clock())
    release = asyncio.Event()

    async def slow() -> bool:
        await release.wait()
        return True

    first = asyncio.create_task(cache(slow))
    second = asyncio.create_task(cache(slow))
    await asyncio.sleep(0)
    first.cancel()
    release.set()
    assert await second is True
    with pytest.raises(asyncio.CancelledError):
        await first
