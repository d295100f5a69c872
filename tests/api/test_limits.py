"""The HTTP front's own limits: the client's rate (429 after authentication, before anything
is published) and the requests in flight (503 at once past the bound); the probes and the
metrics are limited by neither."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY

from api.admin import create_admin_app
from api.dependencies import get_gateway
from api.rate_limits import TokenBuckets
from schemas.commands import Command
from schemas.replies import Reply
from tests.api.conftest import MakeApp
from tests.api.fakes import FakeGateway
from tests.api.requests import SIGNATURE
from tests.api.shapes import assert_flat, assert_listed
from tests.api.tokens import TokenMint

CHALLENGE_URL = f"/v1/mfa/challenges/signatures/{uuid.uuid4()}"
BODY = {"signature": SIGNATURE}


def limited(limit: str) -> float:
    value = REGISTRY.get_sample_value("device_binding_limited_total", {"limit": limit})
    return value or 0.0


def in_flight() -> float:
    return REGISTRY.get_sample_value("device_binding_http_requests_in_flight") or 0.0


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def client_of(
    app: FastAPI, base_url: str = "http://api.test"
) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
        yield client


# --- the client's rate -----------------------------------------------------------------


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def rated_app(make_unit_app: MakeApp, clock: Clock) -> FastAPI:
    """The app with a bucket of 2 tokens refilled at 1 per second, on a clock the test moves."""
    app = make_unit_app(client_rate_per_second=1, client_rate_burst=2)
    app.state.client_rates = TokenBuckets(rate=1, burst=2, clock=clock)
    return app


async def test_past_its_burst_a_client_gets_429_and_nothing_is_published(
    rated_app: FastAPI, gateway: FakeGateway, mint: TokenMint, clock: Clock
) -> None:
    before = limited("client_rate")
    async with client_of(rated_app) as client:
        for _ in range(2):
            assert (await client.put(CHALLENGE_URL, json=BODY, headers=mint.headers())).is_success
        refused = await client.put(CHALLENGE_URL, json=BODY, headers=mint.headers())
        assert_listed(refused, 429, "too_many_requests", "Authorization")
        assert refused.headers["Retry-After"] == "1"
        assert len(gateway.sent) == 2
        assert limited("client_rate") == before + 1

        clock.now += 1.0  # one token back
        assert (await client.put(CHALLENGE_URL, json=BODY, headers=mint.headers())).is_success
        assert len(gateway.sent) == 3


async def test_retry_after_is_the_wait_for_a_token_rounded_up(
    make_unit_app: MakeApp, mint: TokenMint, clock: Clock
) -> None:
    app = make_unit_app()
    app.state.client_rates = TokenBuckets(rate=0.3, burst=1, clock=clock)
    async with client_of(app) as client:
        assert (await client.get(CHALLENGE_URL, headers=mint.headers())).is_success
        clock.now += 0.1  # 0.03 of a token: 3.23 s to go
        refused = await client.get(CHALLENGE_URL, headers=mint.headers())
        assert_listed(refused, 429, "too_many_requests", "Authorization")
        assert refused.headers["Retry-After"] == "4"


async def test_each_client_id_has_its_own_bucket(
    rated_app: FastAPI, gateway: FakeGateway, mint: TokenMint
) -> None:
    async with client_of(rated_app) as client:
        for _ in range(2):
            await client.get(CHALLENGE_URL, headers=mint.headers())
        assert (await client.get(CHALLENGE_URL, headers=mint.headers())).status_code == 429
        other = mint.headers(client_id="bank-app-2")
        assert (await client.get(CHALLENGE_URL, headers=other)).status_code == 200
        assert [command.client_id for command in gateway.sent][-1] == "bank-app-2"


async def test_the_token_is_checked_first_and_the_request_after(
    rated_app: FastAPI, gateway: FakeGateway, mint: TokenMint
) -> None:
    async with client_of(rated_app) as client:
        # Refused tokens take nothing from the client's bucket (they name no client).
        for _ in range(5):
            response = await client.put(CHALLENGE_URL, json=BODY, headers=mint.headers(exp=1))
            assert response.status_code == 401
        for _ in range(2):
            await client.put(CHALLENGE_URL, json=BODY, headers=mint.headers())
        # Past the rate, neither the path nor the body is looked at.
        not_an_id = await client.put("/v1/mfa/challenges/signatures/x", headers=mint.headers())
        assert_listed(not_an_id, 429, "too_many_requests", "Authorization")
        bad_body = await client.put(CHALLENGE_URL, json={"signature": 1}, headers=mint.headers())
        assert_listed(bad_body, 429, "too_many_requests", "Authorization")
        assert (await client.put(CHALLENGE_URL, json=BODY)).status_code == 401
    assert len(gateway.sent) == 2


async def test_every_api_operation_is_limited_and_documents_its_429(
    make_unit_app: MakeApp, gateway: FakeGateway, mint: TokenMint, clock: Clock
) -> None:
    app = make_unit_app()
    app.state.client_rates = TokenBuckets(rate=0.001, burst=1, clock=clock)
    operations = [
        (method.upper(), path.replace("{id}", str(uuid.uuid4())), spec)
        for path, methods in app.openapi()["paths"].items()
        for method, spec in methods.items()
    ]
    assert len(operations) >= 10
    async with client_of(app) as client:
        assert (await client.get(CHALLENGE_URL, headers=mint.headers())).status_code == 200
        for method, url, spec in operations:
            assert url.startswith("/v1/")
            assert "429" in spec["responses"], url
            # Past the rate: no query, path or body is looked at, nothing published.
            response = await client.request(method, url, headers=mint.headers())
            assert_listed(response, 429, "too_many_requests", "Authorization")
    assert len(gateway.sent) == 1


async def test_probes_and_metrics_are_not_limited(
    rated_app: FastAPI, gateway: FakeGateway, mint: TokenMint
) -> None:
    rated_app.state.gateway = gateway
    async with client_of(rated_app) as client, client_of(create_admin_app(rated_app)) as admin:
        for _ in range(3):
            await client.get(CHALLENGE_URL, headers=mint.headers())
        for _ in range(10):
            for path in ("/healthz", "/readyz", "/metrics"):
                assert (await admin.get(path, headers=mint.headers())).status_code == 200


# --- requests in flight ----------------------------------------------------------------


class HeldGateway(FakeGateway):
    """Holds every command until :attr:`release` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def send(self, command: Command) -> Reply:
        self.sent.append(command)
        await self.release.wait()
        if self.error is not None:
            raise self.error
        return self.script(command)


@pytest.fixture
def held() -> HeldGateway:
    return HeldGateway()


@pytest.fixture
def bounded_app(make_unit_app: MakeApp, held: HeldGateway) -> FastAPI:
    """At most two requests in flight, on a gateway that holds them."""
    app = make_unit_app(max_in_flight=2, retry_after_seconds=3)
    app.dependency_overrides[get_gateway] = lambda: held
    return app


async def wait_for(condition: Callable[[], bool], *, within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not condition():
            await asyncio.sleep(0.001)


async def test_past_the_bound_a_request_gets_503_at_once_and_the_accepted_all_finish(
    bounded_app: FastAPI, held: HeldGateway, mint: TokenMint
) -> None:
    before = limited("in_flight")
    headers = mint.headers()
    async with client_of(bounded_app) as client:
        accepted = [
            asyncio.create_task(client.put(CHALLENGE_URL, json=BODY, headers=headers))
            for _ in range(2)
        ]
        await wait_for(lambda: len(held.sent) == 2)
        assert in_flight() == 2

        started = time.perf_counter()
        shed = await client.put(CHALLENGE_URL, json=BODY, headers=headers)
        elapsed = time.perf_counter() - started
        assert_flat(shed, 503, "service_unavailable")
        assert shed.headers["Retry-After"] == "3"
        assert elapsed < 0.5  # answered, not queued behind the two held
        assert len(held.sent) == 2  # nothing published for it
        assert limited("in_flight") == before + 1
        # Outside /v1: not counted, not refused.
        assert (await client.get("/openapi.json")).status_code == 200

        held.release.set()
        assert [(await task).status_code for task in accepted] == [204, 204]
        assert in_flight() == 0
        # The slots are free again.
        assert (await client.put(CHALLENGE_URL, json=BODY, headers=headers)).status_code == 204


async def test_refusals_before_publishing_hold_a_slot_only_while_they_last(
    bounded_app: FastAPI, held: HeldGateway, mint: TokenMint
) -> None:
    held.release.set()
    held.error = RuntimeError("boom")
    async with client_of(bounded_app) as client:
        for _ in range(5):
            assert (await client.put(CHALLENGE_URL, json=BODY)).status_code == 401
            failed = await client.put(CHALLENGE_URL, json=BODY, headers=mint.headers())
            assert failed.status_code == 500
    assert in_flight() == 0


async def test_the_probes_answer_while_the_api_is_full(
    bounded_app: FastAPI, held: HeldGateway, mint: TokenMint
) -> None:
    bounded_app.state.gateway = held
    async with client_of(bounded_app) as client, client_of(create_admin_app(bounded_app)) as admin:
        tasks = [
            asyncio.create_task(client.get(CHALLENGE_URL, headers=mint.headers())) for _ in range(2)
        ]
        await wait_for(lambda: len(held.sent) == 2)
        assert (await client.get(CHALLENGE_URL, headers=mint.headers())).status_code == 503
        assert (await admin.get("/healthz")).status_code == 200
        assert (await admin.get("/readyz")).status_code == 200
        held.release.set()
        assert [(await task).status_code for task in tasks] == [200, 200]
