"""Strict input: a body is read only when declared as UTF-8 JSON (else 415), and a JSON object
that repeats a key, at any depth, is refused (400) rather than read by its last value; both
after authentication, and nothing published."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api.bodies import refuse_repeated_keys
from api.dependencies import MAX_BODY_BYTES
from api.errors import RequestInvalid
from tests.api.fakes import FakeGateway
from tests.api.requests import SIGNATURE, registration
from tests.api.shapes import assert_flat, assert_listed
from tests.api.tokens import TokenMint

ID = "6f1d8f3e-52c9-4a8e-9a57-0d5b8a3f4c21"
JSON = "application/json"
# Another spelling of the signature: refused (not hex) if it were the one read.
WRONG = "zz" + SIGNATURE[2:]
PAYMENT = {
    "amount": {"value": "12.30", "currency": "EUR"},
    "payee": {"name": "Acme GmbH", "iban": "DE89370400440532013000"},
}


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    status: int

    def body(self) -> dict[str, Any]:
        """A body the route accepts."""
        if self.path == "/v1/mfa/devices":
            return registration()
        if self.path == "/v1/mfa/challenges/devices":
            return {"device_id": ID, "transaction": PAYMENT}
        if self.path.endswith("/keys"):
            return {
                "key_type": "ecdsa-p256",
                "key": registration()["key"],
                "key_purpose": "restricted",
                "device_signature": {
                    "signature_key_purpose": "unrestricted",
                    "signature": SIGNATURE,
                },
            }
        return {"signature": SIGNATURE}

    @property
    def url(self) -> str:
        return self.path.replace("{id}", ID)


# Every route that reads a body (checked against the OpenAPI document below).
ROUTES = [
    Route("POST", "/v1/mfa/devices", 202),
    Route("PUT", "/v1/mfa/challenges/signatures/{id}", 204),
    Route("POST", "/v1/mfa/devices/{id}/keys", 201),
    Route("POST", "/v1/mfa/challenges/devices", 201),
    Route("PUT", "/v1/mfa/challenges/devices/{id}", 204),
]
SIGNATURE_URL = ROUTES[1].url


def _ids(route: Route) -> str:
    return f"{route.method}-{route.path}"


async def _send(
    client: httpx.AsyncClient,
    route: Route,
    content: bytes,
    headers: Mapping[str, str] | Sequence[tuple[str, str]],
) -> httpx.Response:
    return await client.request(route.method, route.url, content=content, headers=headers)


def test_the_routes_above_are_every_route_with_a_body(unit_app: FastAPI) -> None:
    document = unit_app.openapi()
    with_body = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if "requestBody" in operation
    }
    assert with_body == {(route.method, route.path) for route in ROUTES}


# --- Content-Type -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        pytest.param(JSON, id="json"),
        pytest.param("application/json; charset=utf-8", id="charset-utf-8"),
        pytest.param("application/json;charset=UTF-8", id="charset-upper-no-space"),
        pytest.param('application/json; charset="utf-8"', id="charset-quoted"),
        pytest.param("Application/JSON", id="type-upper-case"),
        pytest.param(" application/json ; charset=utf-8 ", id="spaces-around"),
        pytest.param("application/json; version=1", id="other-parameter"),
        pytest.param("application/problem+json", id="problem+json"),
        pytest.param("application/vnd.bank.device-binding+json; charset=utf-8", id="vnd+json"),
    ],
)
@pytest.mark.parametrize("route", ROUTES, ids=_ids)
async def test_json_content_types_are_read(
    client: httpx.AsyncClient,
    gateway: FakeGateway,
    mint: TokenMint,
    route: Route,
    content_type: str,
) -> None:
    headers = mint.headers() | {"Content-Type": content_type}
    response = await _send(client, route, json.dumps(route.body()).encode(), headers)
    assert response.status_code == route.status, response.text
    assert len(gateway.sent) == 1


REFUSED_CONTENT_TYPES = [
    pytest.param("text/plain", id="text-plain"),
    pytest.param("text/plain; charset=utf-8", id="text-plain-utf-8"),
    pytest.param("application/xml", id="xml"),
    pytest.param("multipart/form-data; boundary=x", id="multipart"),
    pytest.param("application/x-www-form-urlencoded", id="form"),
    pytest.param("text/json", id="text-json"),
    pytest.param("application/jsonp", id="jsonp"),
    pytest.param("application/json-seq", id="json-seq"),
    pytest.param("application/+json", id="suffix-only"),
    pytest.param("text/vnd.example+json", id="text-tree-suffix"),
    pytest.param("application/json+xml", id="json-then-xml"),
    pytest.param("*/*", id="wildcard"),
    pytest.param("", id="empty"),
    pytest.param("application/json; charset=latin-1", id="charset-latin-1"),
    pytest.param("application/json; charset=utf-16", id="charset-utf-16"),
    pytest.param("application/json; charset=utf8", id="charset-utf8-unregistered"),
    pytest.param("application/problem+json; charset=iso-8859-1", id="suffix-charset-latin"),
    pytest.param("application/json; charset=utf-8; charset=latin-1", id="two-charsets"),
    pytest.param("application/json; charset", id="parameter-without-value"),
    pytest.param("application/json; =utf-8", id="parameter-without-name"),
    pytest.param("application/json, text/plain", id="list-of-types"),
]


@pytest.mark.parametrize("content_type", REFUSED_CONTENT_TYPES)
@pytest.mark.parametrize("route", ROUTES, ids=_ids)
async def test_other_content_types_are_refused(
    client: httpx.AsyncClient,
    gateway: FakeGateway,
    mint: TokenMint,
    route: Route,
    content_type: str,
) -> None:
    # The body itself is valid JSON: only its declared type is wrong.
    headers = mint.headers() | {"Content-Type": content_type}
    response = await _send(client, route, json.dumps(route.body()).encode(), headers)
    body = assert_flat(response, 415, "unsupported_media_type")
    assert "application/json" in body["detail"]
    assert gateway.sent == []


@pytest.mark.parametrize("route", ROUTES, ids=_ids)
async def test_a_missing_content_type_is_refused(
    client: httpx.AsyncClient, gateway: FakeGateway, mint: TokenMint, route: Route
) -> None:
    response = await _send(client, route, json.dumps(route.body()).encode(), mint.headers())
    assert "content-type" not in response.request.headers
    body = assert_flat(response, 415, "unsupported_media_type")
    assert "missing" in body["detail"]
    assert gateway.sent == []


async def test_two_content_types_are_refused(
    client: httpx.AsyncClient, gateway: FakeGateway, mint: TokenMint
) -> None:
    # Which one a proxy reads is anyone's guess: neither is trusted.
    headers = [*mint.headers().items(), ("Content-Type", JSON), ("Content-Type", "text/plain")]
    content = json.dumps({"signature": SIGNATURE}).encode()
    response = await client.put(SIGNATURE_URL, content=content, headers=headers)
    assert_flat(response, 415, "unsupported_media_type")
    assert gateway.sent == []


async def test_the_content_type_is_not_echoed(client: httpx.AsyncClient, mint: TokenMint) -> None:
    content_type = "text/x-probe-7f3a; charset=latin-1"
    headers = mint.headers() | {"Content-Type": content_type}
    response = await client.put(SIGNATURE_URL, content=b"{}", headers=headers)
    assert_flat(response, 415, "unsupported_media_type")
    assert "x-probe-7f3a" not in response.text
    assert "latin-1" not in response.text


# The order: token, path id, declared type, then the body (api/dependencies.py).


async def test_a_stranger_learns_nothing_about_the_content_type(
    client: httpx.AsyncClient, gateway: FakeGateway, mint: TokenMint
) -> None:
    plain = {"Content-Type": "text/plain"}
    unauthenticated = await client.put(SIGNATURE_URL, content=b"x", headers=plain)
    assert_listed(unauthenticated, 401, "unauthorized", "Authorization")
    no_scope = await client.put(
        SIGNATURE_URL, content=b"x", headers=mint.headers(scope="profile") | plain
    )
    assert_listed(no_scope, 403, "insufficient_scope", "Authorization")
    assert gateway.sent == []


async def test_the_path_id_comes_before_the_content_type(
    client: httpx.AsyncClient, gateway: FakeGateway, mint: TokenMint
) -> None:
    headers = mint.headers() | {"Content-Type": "text/plain"}
    response = await client.put("/v1/mfa/challenges/signatures/nope", content=b"x", headers=headers)
    assert_flat(response, 404, "not_found")
    assert gateway.sent == []


async def test_the_content_type_comes_before_the_body(
    client: httpx.AsyncClient, gateway: FakeGateway, mint: TokenMint
) -> None:
    # Refused on its header alone: a body over the limit is not even read.
    headers = mint.headers() | {"Content-Type": "text/plain"}
    content = b"x" * (MAX_BODY_BYTES + 1)
    response = await client.put(SIGNATURE_URL, content=content, headers=headers)
    assert_flat(response, 415, "unsupported_media_type")
    assert gateway.sent == []


# --- repeated keys ------------------------------------------------------------------------


def _refused(response: httpx.Response, gateway: FakeGateway, field: str) -> None:
    body = assert_flat(response, 400, "validation_error")
    assert body["detail"] == f"Invalid request: {field}: appears more than once."
    assert gateway.sent == []


@pytest.mark.parametrize(
    ("first", "last"),
    [
        pytest.param(WRONG, SIGNATURE, id="wrong-then-valid"),
        pytest.param(SIGNATURE, SIGNATURE, id="same-twice"),
        pytest.param(SIGNATURE, SIGNATURE.upper(), id="valid-twice-other-case"),
    ],
)
async def test_a_repeated_signature_is_refused(
    client: httpx.AsyncClient, gateway: FakeGateway, mint: TokenMint, first: str, last: str
) -> None:
    content = b'{"signature": "%s", "signature": "%s"}' % (first.encode(), last.encode())
    headers = mint.headers() | {"Content-Type": JSON}
    response = await client.put(SIGNATURE_URL, content=content, headers=headers)
    _refused(response, gateway, "signature")
    assert SIGNATURE not in response.text
    assert WRONG not in response.text


@pytest.mark.parametrize(
    ("content", "field"),
    [
        # Escapes name the same key: what a parser reads, not how it is spelled.
        pytest.param(b'{"signature": "%s", "sign\\u0061ture": "%s"}', "signature", id="escaped"),
        pytest.param(
            b'{"signature": "%s", "device_data": "a", "device_data": "b"}',
            "device_data",
            id="other-key",
        ),
        pytest.param(
            b'{"signature": "%s", "device_data": null, "device_data": "b"}',
            "device_data",
            id="null-first",
        ),
    ],
)
async def test_any_repeated_key_of_the_signature_body_is_refused(
    client: httpx.AsyncClient, gateway: FakeGateway, mint: TokenMint, content: bytes, field: str
) -> None:
    content = content.replace(b"%s", SIGNATURE.encode())
    headers = mint.headers() | {"Content-Type": JSON}
    response = await client.put(SIGNATURE_URL, content=content, headers=headers)
    _refused(response, gateway, field)


async def test_a_repeated_key_of_the_registration_is_refused(
    client: httpx.AsyncClient, gateway: FakeGateway, mint: TokenMint
) -> None:
    body = registration()
    content = json.dumps(body).encode()[:-1] + b', "person_id": "person-2"}'
    headers = mint.headers() | {"Content-Type": JSON}
    response = await client.post("/v1/mfa/devices", content=content, headers=headers)
    _refused(response, gateway, "person_id")


@pytest.mark.parametrize(
    ("transaction", "field"),
    [
        pytest.param(
            '{"amount": {"value": "1.00", "value": "12.30", "currency": "EUR"},'
            ' "payee": {"name": "Acme GmbH"}}',
            "transaction.amount.value",
            id="amount-value",
        ),
        pytest.param(
            '{"amount": {"value": "12.30", "currency": "EUR"},'
            ' "payee": {"name": "Mallory", "iban": "DE89370400440532013000", "name": "Acme"}}',
            "transaction.payee.name",
            id="payee-name",
        ),
        pytest.param(
            '{"amount": {"value": "12.30", "currency": "EUR"}, "payee": {"name": "Mallory"},'
            ' "payee": {"name": "Acme GmbH"}}',
            "transaction.payee",
            id="whole-payee",
        ),
    ],
)
async def test_a_repeated_key_in_a_nested_object_is_refused(
    client: httpx.AsyncClient,
    gateway: FakeGateway,
    mint: TokenMint,
    transaction: str,
    field: str,
) -> None:
    content = f'{{"device_id": "{ID}", "transaction": {transaction}}}'.encode()
    headers = mint.headers() | {"Content-Type": JSON}
    response = await client.post("/v1/mfa/challenges/devices", content=content, headers=headers)
    _refused(response, gateway, field)


async def test_a_repeated_key_of_the_vouching_signature_is_refused(
    client: httpx.AsyncClient, gateway: FakeGateway, mint: TokenMint
) -> None:
    route = ROUTES[2]
    text = json.dumps(route.body())
    vouch = f'"signature": "{SIGNATURE}"'
    content = text.replace(vouch, f'"signature": "{WRONG}", {vouch}').encode()
    headers = mint.headers() | {"Content-Type": JSON}
    response = await _send(client, route, content, headers)
    _refused(response, gateway, "device_signature.signature")


def test_the_same_key_in_different_objects_is_not_a_repeat() -> None:
    refuse_repeated_keys(b'{"a": {"a": 1, "b": {"a": 2}}, "b": [{"a": 1}, {"a": 2}], "c": "a"}')


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"not json", id="not-json"),
        pytest.param(b'{"signature": NaN}', id="nan"),
        pytest.param(b'{"signature": NaN, "signature": "%s"}', id="nan-then-valid"),
        pytest.param(b'{"signature": Infinity, "signature": "%s"}', id="infinity-then-valid"),
        pytest.param(b'{"signature": -Infinity}', id="minus-infinity"),
        pytest.param(b'{"signature": ' + b"[" * 5000 + b"]" * 5000 + b"}", id="deep-array"),
        pytest.param(
            b'{"signature": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5000 + b', "signature": "%s"}',
            id="deep-object-then-valid",
        ),
        pytest.param(b'{"signature": ' + b"1" * 5000 + b', "signature": "%s"}', id="huge-integer"),
        pytest.param(b'{"signature": "\\ud800", "signature": "%s"}', id="lone-surrogate"),
        pytest.param(b'{"signature": "\xff", "signature": "%s"}', id="invalid-utf8"),
        pytest.param(b'\xef\xbb\xbf{"signature": "%s"}', id="byte-order-mark"),
        pytest.param(b'{"signature": "%s"} {"signature": "%s"}', id="two-documents"),
    ],
)
async def test_hostile_json_is_a_clean_400(
    client: httpx.AsyncClient, gateway: FakeGateway, mint: TokenMint, content: bytes
) -> None:
    content = content.replace(b"%s", SIGNATURE.encode())
    headers = mint.headers() | {"Content-Type": JSON}
    response = await client.put(SIGNATURE_URL, content=content, headers=headers)
    body = assert_flat(response, 400, "validation_error")
    assert body["detail"].startswith("Invalid request: ")
    assert "Traceback" not in response.text
    assert gateway.sent == []


async def test_whitespace_around_the_body_is_still_read(
    client: httpx.AsyncClient, gateway: FakeGateway, mint: TokenMint
) -> None:
    content = b' \r\n\t{"signature": "%s"} \n' % SIGNATURE.encode()
    headers = mint.headers() | {"Content-Type": JSON}
    response = await client.put(SIGNATURE_URL, content=content, headers=headers)
    assert response.status_code == 204, response.text
    assert len(gateway.sent) == 1


async def test_a_repeated_key_is_found_past_leading_whitespace(
    client: httpx.AsyncClient, gateway: FakeGateway, mint: TokenMint
) -> None:
    content = b'\n  {"signature": "%s", "signature": "%s"}' % (WRONG.encode(), SIGNATURE.encode())
    headers = mint.headers() | {"Content-Type": JSON}
    response = await client.put(SIGNATURE_URL, content=content, headers=headers)
    _refused(response, gateway, "signature")


def test_a_repeated_key_is_named_by_its_path_through_arrays() -> None:
    with pytest.raises(RequestInvalid) as refused:
        refuse_repeated_keys(b'{"a": [{"b": 1}, {"c": {"d": 1, "d": 2}}]}')
    assert refused.value.detail == "Invalid request: a.1.c.d: appears more than once."


def test_a_repeated_key_that_is_not_printable_is_named_safely() -> None:
    with pytest.raises(RequestInvalid) as refused:
        refuse_repeated_keys(b'{"a\\u0000\\n": 1, "a\\u0000\\n": 2}')
    assert refused.value.detail == "Invalid request: a??: appears more than once."
    key = "k" * 200
    with pytest.raises(RequestInvalid) as refused:
        refuse_repeated_keys(f'{{"{key}": 1, "{key}": 2}}'.encode())
    assert len(refused.value.detail) < 120
