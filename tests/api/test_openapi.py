"""The OpenAPI document describes what the API really accepts and answers."""

from __future__ import annotations

import httpx


async def test_document(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    put = document["paths"]["/v1/mfa/challenges/signatures/{id}"]["put"]
    body_schema = put["requestBody"]["content"]["application/json"]["schema"]
    assert body_schema == {"$ref": "#/components/schemas/SignatureSubmission"}
    assert set(schemas["SignatureSubmission"]["properties"]) == {"signature", "device_data"}
    post = document["paths"]["/v1/mfa/devices"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/DeviceRegistration"
    }
    assert "KeyPurpose" in schemas
    for operations in document["paths"].values():
        for operation in operations.values():
            assert "422" not in operation["responses"]
    assert put["responses"]["409"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorList"
    }
    assert put["responses"]["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/FlatError"
    }
