"""The product over HTTP for the system tests: a real worker and API on real Kafka, the
worker's clock the test's (the ``stack`` fixture is in this package's conftest)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.http import Tokens, api_client, api_settings
from tests.support.worker import (
    DeviceKey,
    ManualClock,
    TopicReader,
    running_worker,
    start_reader,
    worker_settings,
)
from worker.settings import WorkerSettings

SIGNATURES = "/v1/mfa/challenges/signatures"


@dataclass
class Stack:
    http: httpx.AsyncClient
    tokens: Tokens
    clock: ManualClock
    events: TopicReader
    settings: WorkerSettings

    def auth(self, client_id: str = "bank-1") -> dict[str, str]:
        return self.tokens.headers(client_id)

    async def register(
        self, key: DeviceKey, *, person_id: str = "person-1", client_id: str = "bank-1"
    ) -> dict[str, Any]:
        response = await self.http.post(
            "/v1/mfa/devices",
            headers=self.auth(client_id),
            json={"person_id": person_id, "key_type": "ecdsa-p256", "key": key.public_hex},
        )
        assert response.status_code == 202, response.text
        body: dict[str, Any] = response.json()
        return body

    async def bind(
        self, key: DeviceKey, *, person_id: str = "person-1", client_id: str = "bank-1"
    ) -> str:
        """Register and bind a device with ``key``; its id."""
        registered = await self.register(key, person_id=person_id, client_id=client_id)
        challenge_id = registered["challenge"]["id"]
        signature = key.sign(await self.otp(challenge_id))
        response = await self.put(challenge_id, signature, client_id)
        assert response.status_code == 204, response.text
        device_id: str = registered["id"]
        return device_id

    async def otp(self, challenge_id: str) -> str:
        return await otp_of(self.settings, challenge_id)

    async def put(
        self, challenge_id: str, signature: str, client_id: str = "bank-1"
    ) -> httpx.Response:
        return await self.http.put(
            f"{SIGNATURES}/{challenge_id}",
            headers=self.auth(client_id),
            json={"signature": signature},
        )

    async def events_of(self, challenge_id: str, count: int) -> list[dict[str, Any]]:
        records = await self.events.wait_for(
            lambda r: r["value"]["subject"] == challenge_id, count=count
        )
        return [r["value"] for r in records]


otp_readers: dict[str, TopicReader] = {}


async def otp_of(settings: WorkerSettings, challenge_id: str) -> str:
    reader = otp_readers.get(settings.otp_deliveries_topic)
    if reader is None:
        reader = await start_reader(settings.kafka_bootstrap_servers, settings.otp_deliveries_topic)
        otp_readers[settings.otp_deliveries_topic] = reader
    [record] = await reader.wait_for(lambda r: r["value"]["challenge_id"] == challenge_id)
    otp: str = record["value"]["otp"]
    return otp


@asynccontextmanager
async def http_stack(
    kafka_bootstrap: str,
    database_url: str,
    tmp_path: Path,
    *,
    workers: int = 1,
    worker_overrides: dict[str, Any] | None = None,
) -> AsyncIterator[Stack]:
    """The stack with ``workers`` worker instances in one consumer group (they share the
    commands' partitions, the database and the test's clock); ``worker_overrides``: their
    settings that differ from the tests' defaults."""
    clock = ManualClock()
    settings = worker_settings(
        kafka_bootstrap,
        tmp_path / "store.db",
        database_url=database_url,
        **(worker_overrides or {}),
    )
    tokens = Tokens(tmp_path / "keys")
    async with AsyncExitStack() as running:
        for _ in range(workers):
            await running.enter_async_context(running_worker(settings, clock=clock))
        http = await running.enter_async_context(api_client(api_settings(settings, tokens)))
        events = await start_reader(kafka_bootstrap, settings.events_topic)
        try:
            yield Stack(http, tokens, clock, events, settings)
        finally:
            await events.consumer.stop()
            reader = otp_readers.pop(settings.otp_deliveries_topic, None)
            if reader is not None:
                await reader.consumer.stop()


def assert_flat(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"id", "status", "code", "title", "detail", "error_code"}
    assert (body["status"], body["code"], body["error_code"]) == (status, code, code)
    assert body["id"] == response.headers["X-Request-ID"]
    return body


def assert_listed(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    [error] = response.json()["errors"]
    assert set(error) == {"id", "status", "code", "title", "detail", "source"}
    assert set(error["source"]) == {"field", "message"}
    assert (error["status"], error["code"]) == (status, code)
    assert error["id"] == response.headers["X-Request-ID"]
    item: dict[str, Any] = error
    return item
