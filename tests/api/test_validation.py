"""400 validation_error (SPEC §3): refused before anything is published, values never echoed."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from api.dependencies import MAX_BODY_BYTES
from schemas.commands import RegisterDevice, VerifySignature
from schemas.fields import MAX_DEVICE_DATA_BYTES, MAX_SIGNATURE_HEX
from tests.api.fakes import FakeGateway
from tests.api.requests import SIGNATURE, device_key_hex, off_curve_key_hex, registration
from tests.api.shapes import assert_flat
from tests.api.tokens import TokenMint

CHALLENGE_URL = f"/v1/mfa/challenges/signatures/{uuid.uuid4()}"
DEVICES_URL = "/v1/mfa/devices"
LONG_DEVICE_DATA = "d" * (MAX_DEVICE_DATA_BYTES + 1)


def _refused(response: httpx.Response, gateway: FakeGateway, field: str) -> str:
    body = assert_flat(response, 400, "validation_error")
    assert f"{field}:" in body["detail"]
    assert gateway.sent == []
    return str(body["detail"])


@pytest.mark.parametrize(
    ("content", "field"),
    [
        pytest.param(b"not json", "body", id="not-json"),
        pytest.param(b"", "body", id="empty-body"),
        pytest.param(b'{"signature": "ab"', "body", id="truncated-json"),
        pytest.param(b"[]", "body", id="array"),
        pytest.param(b'"3045"', "body", id="string"),
        pytest.param(b"{}", "signature", id="missing-signature"),
        pytest.param(b'{"signature": 3045}', "signature", id="number-signature"),
        pytest.param(b'{"signature": null}', "signature", id="null-signature"),
        pytest.param(b'{"signature": ""}', "signature", id="empty-signature"),
    ],
)
async def test_signature_body_not_usable(
    client: httpx.AsyncClient,
    gateway: FakeGateway,
    mint: TokenMint,
    content: bytes,
    field: str,
) -> None:
    headers = mint.headers() | {"Content-Type": "application/json"}
    response = await client.put(CHALLENGE_URL, content=content, headers=headers)
    _refused(response, gateway, field)


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param("zz" + SIGNATURE[2:], id="not-hex"),
        pytest.param("0x" + SIGNATURE, id="0x-prefix"),
        pytest.param(" " + SIGNATURE, id="leading-space"),
        pytest.param(SIGNATURE[:70] + " " + SIGNATURE[70:], id="inner-space"),
        pytest.param(SIGNATURE + "\n", id="trailing-newline"),
        pytest.param(SIGNATURE[:-1], id="odd-length"),
        pytest.param("ab" * (MAX_SIGNATURE_HEX // 2 + 1), id="longer-than-144"),
        pytest.param(
            "MEUCIQC9vr2LpeTqI6SrPYUsvwlozLxzGcfEOIjlS/NOiW0Z2AIgWID8o4v0UFC/9z1B", id="base64"
        ),
    ],
)
async def test_signature_spelling(
    client: httpx.AsyncClient, gateway: FakeGateway, mint: TokenMint, signature: str
) -> None:
    response = await client.put(
        CHALLENGE_URL, json={"signature": signature}, headers=mint.headers()
    )
    _refused(response, gateway, "signature")
    assert signature.strip() not in response.text


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        pytest.param({"device_data": LONG_DEVICE_DATA}, "device_data", id="device-data-too-long"),
        pytest.param({"device_data": "é" * 4097}, "device_data", id="device-data-too-many-bytes"),
        pytest.param({"device_data": 42}, "device_data", id="device-data-number"),
        pytest.param({"otp": "123456"}, "otp", id="unknown-field"),
    ],
)
async def test_signature_body_other_fields(
    client: httpx.AsyncClient,
    gateway: FakeGateway,
    mint: TokenMint,
    extra: dict[str, Any],
    field: str,
) -> None:
    body = {"signature": SIGNATURE} | extra
    response = await client.put(CHALLENGE_URL, json=body, headers=mint.headers())
    _refused(response, gateway, field)
    assert SIGNATURE not in response.text
    assert "123456" not in response.text
    assert LONG_DEVICE_DATA[:64] not in response.text


async def test_limits_themselves_are_accepted(
    client: httpx.AsyncClient, gateway: FakeGateway, mint: TokenMint
) -> None:
    longest = "AB" * (MAX_SIGNATURE_HEX // 2)
    data = "d" * MAX_DEVICE_DATA_BYTES
    body = {"signature": longest, "device_data": data}
    response = await client.put(CHALLENGE_URL, json=body, headers=mint.headers())
    assert response.status_code == 204, response.text
    (command,) = gateway.sent
    assert isinstance(command, VerifySignature)
    # Hex is accepted in either case and forwarded in one spelling.
    assert command.signature == longest.lower()
    assert command.device_data == data


async def test_body_larger_than_the_limit(
    client: httpx.AsyncClient, gateway: FakeGateway, mint: TokenMint
) -> None:
    content = json.dumps({"signature": SIGNATURE, "pad": "x" * MAX_BODY_BYTES}).encode()
    headers = mint.headers() | {"Content-Type": "application/json"}
    response = await client.put(CHALLENGE_URL, content=content, headers=headers)
    _refused(response, gateway, "body")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        pytest.param({"person_id": None}, "person_id", id="missing-person"),
        pytest.param({"person_id": ""}, "person_id", id="empty-person"),
        pytest.param({"person_id": "p" * 129}, "person_id", id="long-person"),
        pytest.param({"person_id": 7}, "person_id", id="number-person"),
        pytest.param({"key_type": None}, "key_type", id="missing-key-type"),
        pytest.param({"key_type": "ecdsa-p384"}, "key_type", id="other-key-type"),
        pytest.param({"key": None}, "key", id="missing-key"),
        pytest.param({"key": "04" + "zz" * 64}, "key", id="key-not-hex"),
        pytest.param({"key": "04" + "ab" * 63}, "key", id="key-short"),
        pytest.param({"key": "02" + "ab" * 32}, "key", id="key-compressed"),
        pytest.param({"key": off_curve_key_hex()}, "key", id="key-off-curve"),
        pytest.param({"key_purpose": "admin"}, "key_purpose", id="key-purpose"),
        pytest.param({"challenge_type": "email"}, "challenge_type", id="challenge-type"),
        pytest.param({"language": "es"}, "language", id="language"),
        pytest.param({"name": ""}, "name", id="empty-name"),
        pytest.param({"device_data": LONG_DEVICE_DATA}, "device_data", id="device-data"),
        pytest.param({"otp": "123456"}, "otp", id="unknown-field"),
    ],
)
async def test_registration_refused(
    client: httpx.AsyncClient,
    gateway: FakeGateway,
    mint: TokenMint,
    overrides: dict[str, Any],
    field: str,
) -> None:
    body = registration(**overrides)
    response = await client.post(DEVICES_URL, json=body, headers=mint.headers())
    _refused(response, gateway, field)
    assert body.get("device_data", "")[:64] not in response.text
    if isinstance(body.get("key"), str) and len(body["key"]) > 8:
        assert body["key"] not in response.text


async def test_registration_defaults(
    client: httpx.AsyncClient, gateway: FakeGateway, mint: TokenMint
) -> None:
    key = device_key_hex().upper()
    body = {"person_id": "person-1", "key_type": "ecdsa-p256", "key": key}
    response = await client.post(DEVICES_URL, json=body, headers=mint.headers())
    assert response.status_code == 202, response.text
    (command,) = gateway.sent
    assert isinstance(command, RegisterDevice)
    assert command.registration.key == key.lower()
    assert command.registration.key_purpose == "unrestricted"
    assert command.registration.challenge_type == "sms"
    assert command.registration.language == "en"


@pytest.mark.parametrize("query", ["", "?filter[person_id]=", "?person_id=person-1"])
async def test_list_needs_the_person_filter(
    client: httpx.AsyncClient, gateway: FakeGateway, mint: TokenMint, query: str
) -> None:
    response = await client.get(DEVICES_URL + query, headers=mint.headers())
    _refused(response, gateway, "filter[person_id]")


@pytest.mark.parametrize(
    "path_id",
    [
        "not-a-uuid",
        "12345",
        uuid.uuid4().hex,  # no hyphens
        "{" + str(uuid.uuid4()) + "}",
        "urn:uuid:" + str(uuid.uuid4()),
        str(uuid.uuid4()) + "0",
    ],
)
@pytest.mark.parametrize(
    ("method", "prefix"),
    [
        ("GET", "/v1/mfa/devices/"),
        ("DELETE", "/v1/mfa/devices/"),
        ("GET", "/v1/mfa/challenges/signatures/"),
        ("PUT", "/v1/mfa/challenges/signatures/"),
    ],
)
async def test_path_id_not_a_uuid_is_not_found(
    client: httpx.AsyncClient,
    gateway: FakeGateway,
    mint: TokenMint,
    method: str,
    prefix: str,
    path_id: str,
) -> None:
    body = {"signature": SIGNATURE} if method == "PUT" else None
    response = await client.request(method, prefix + path_id, json=body, headers=mint.headers())
    assert_flat(response, 404, "not_found")
    assert gateway.sent == []


async def test_path_id_is_checked_before_the_body(
    client: httpx.AsyncClient, gateway: FakeGateway, mint: TokenMint
) -> None:
    url = "/v1/mfa/challenges/signatures/nope"
    response = await client.put(url, content=b"not json", headers=mint.headers())
    assert_flat(response, 404, "not_found")
    assert gateway.sent == []
