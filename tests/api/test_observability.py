"""What operators see of the API: Prometheus metrics by route template, JSON log lines with
the request's ids, and never a token or signature in them."""

from __future__ import annotations

import json
import logging
import uuid

import httpx
import pytest
from prometheus_client import REGISTRY

from schemas.reasons import Reason
from telemetry.logs import JsonFormatter
from tests.api.fakes import FakeGateway, rejected
from tests.api.requests import SIGNATURE
from tests.api.tokens import TokenMint

ROUTE = "/v1/mfa/challenges/signatures/{id}"


def count(route: str, method: str, status: str) -> float:
    value = REGISTRY.get_sample_value(
        "device_binding_http_requests_total", {"route": route, "method": method, "status": status}
    )
    return value or 0.0


async def test_requests_are_counted_by_route_template_and_status(
    client: httpx.AsyncClient, gateway: FakeGateway, mint: TokenMint
) -> None:
    before_ok = count(ROUTE, "PUT", "204")
    before_rejected = count(ROUTE, "PUT", "403")
    before_unmatched = count("unmatched", "GET", "404")
    url = f"/v1/mfa/challenges/signatures/{uuid.uuid4()}"

    await client.put(url, json={"signature": SIGNATURE}, headers=mint.headers())
    gateway.script = lambda command: rejected(
        command, Reason.INVALID_SIGNATURE, attempts_remaining=4
    )
    await client.put(url, json={"signature": SIGNATURE}, headers=mint.headers())
    await client.put(url, json={"signature": SIGNATURE}, headers=mint.headers())
    await client.get(f"/no/such/{uuid.uuid4()}")

    assert count(ROUTE, "PUT", "204") == before_ok + 1
    assert count(ROUTE, "PUT", "403") == before_rejected + 2
    # Unknown paths share one label, so a scanner cannot grow the metric without bound.
    assert count("unmatched", "GET", "404") == before_unmatched + 1
    latency = REGISTRY.get_sample_value(
        "device_binding_http_request_duration_seconds_count", {"route": ROUTE, "method": "PUT"}
    )
    assert latency is not None
    assert latency >= 3


async def test_metrics_are_served_as_prometheus_text_on_the_admin_port(
    client: httpx.AsyncClient, admin: httpx.AsyncClient, mint: TokenMint
) -> None:
    await client.get(f"/v1/mfa/devices/{uuid.uuid4()}", headers=mint.headers())
    response = await admin.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    route = 'route="/v1/mfa/devices/{id}"'
    assert f'device_binding_http_requests_total{{method="GET",{route},status="200"}}' in (
        response.text
    )
    assert "device_binding_command_publish_duration_seconds" in response.text
    # The limits' refusals, at zero until one refuses, and the requests in flight.
    for limit in ("client_rate", "in_flight"):
        assert f'device_binding_limited_total{{limit="{limit}"}}' in response.text
    assert "device_binding_http_requests_in_flight 0.0" in response.text
    # Not on the API's port.
    assert (await client.get("/metrics")).status_code == 404


async def test_log_lines_are_json_with_the_request_id(
    client: httpx.AsyncClient,
    gateway: FakeGateway,
    mint: TokenMint,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def fail(command: object) -> object:
        logging.getLogger("api.test").warning("the worker said no")
        raise RuntimeError("boom")

    gateway.script = fail  # type: ignore[assignment]
    token_headers = mint.headers()
    with caplog.at_level(logging.INFO):
        response = await client.put(
            f"/v1/mfa/challenges/signatures/{uuid.uuid4()}",
            json={"signature": SIGNATURE},
            headers={**token_headers, "X-Request-ID": "req-observed-1"},
        )
    assert response.status_code == 500
    formatter = JsonFormatter("api")
    lines = [json.loads(formatter.format(record)) for record in caplog.records]
    said = [line for line in lines if line["message"] == "the worker said no"]
    assert said
    assert said[0]["request_id"] == "req-observed-1"
    assert said[0]["service"] == "api"
    assert said[0]["level"] == "WARNING"
    text = "\n".join(json.dumps(line) for line in lines)
    assert token_headers["Authorization"].removeprefix("Bearer ") not in text
    assert SIGNATURE not in text
