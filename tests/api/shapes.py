"""Assertions on the two error body shapes of SPEC §3."""

from __future__ import annotations

from typing import Any

import httpx

from api.request_ids import REQUEST_ID_HEADER
from schemas.reasons import Reason

FLAT_KEYS = {"id", "status", "code", "title", "detail", "error_code"}
ITEM_KEYS = {"id", "status", "code", "title", "detail", "source"}


def assert_flat(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """A flat error body (400, 404, 405, 500, 503); returns it."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert set(body) == FLAT_KEYS
    assert body["status"] == status
    assert body["code"] == code
    assert body["error_code"] == code
    assert body["id"] == response.headers[REQUEST_ID_HEADER]
    assert body["title"]
    assert body["detail"]
    return body


def assert_listed(response: httpx.Response, status: int, code: str, field: str) -> dict[str, Any]:
    """A list-shaped error body (401, 403, 409) with one error; returns that error."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"errors"}
    assert len(body["errors"]) == 1
    item: dict[str, Any] = body["errors"][0]
    assert set(item) == ITEM_KEYS
    assert item["status"] == status
    assert item["code"] == code
    assert item["id"] == response.headers[REQUEST_ID_HEADER]
    assert item["title"]
    assert item["detail"]
    assert item["source"] == {"field": field, "message": item["detail"]}
    return item


def rejection_field(reason: Reason) -> str:
    """The ``source.field`` a caller should see for a worker's rejection."""
    return {
        Reason.INVALID_SIGNATURE: "signature",
        Reason.DEVICE_LIMIT_REACHED: "person_id",
        Reason.IDEMPOTENCY_KEY_REUSED: "Idempotency-Key",
        Reason.RESTRICTED_KEY_REQUIRED: "key_purpose",
        Reason.KEY_PURPOSE_MISSING: "key_purpose",
        Reason.KEY_PURPOSE_TAKEN: "key_purpose",
        Reason.PERSON_TEMPORARILY_LOCKED: "person_id",
    }.get(reason, "id")
