"""Error rendering (api/errors.py): each status in the shape the seed gives it."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest

from api.errors import (
    ApiError,
    Forbidden,
    InternalError,
    MethodNotAllowed,
    NotFound,
    RequestInvalid,
    ServiceUnavailable,
    Unauthorized,
    VerificationPending,
    describe_validation_errors,
    render,
)
from api.rejections import Rejected
from schemas.reasons import HTTP_STATUS, Reason
from tests.api.fakes import FakeGateway
from tests.api.shapes import FLAT_KEYS, ITEM_KEYS
from tests.api.tokens import TokenMint

REQUEST_ID = "req-42"


def _rendered(error: ApiError) -> tuple[int, dict[str, str], dict[str, Any]]:
    response = render(error, REQUEST_ID)
    return response.status_code, dict(response.headers), json.loads(bytes(response.body))


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (RequestInvalid("Invalid request: signature: is required."), 400, "validation_error"),
        (NotFound(), 404, "not_found"),
        (MethodNotAllowed("GET"), 405, "method_not_allowed"),
        (Rejected(Reason.NOT_FOUND), 404, "not_found"),
        (InternalError(), 500, "generic_error"),
        (ServiceUnavailable(3), 503, "service_unavailable"),
        (VerificationPending(3), 503, "verification_pending"),
    ],
)
def test_flat_shape(error: ApiError, status: int, code: str) -> None:
    rendered_status, _, body = _rendered(error)
    assert rendered_status == status
    assert set(body) == FLAT_KEYS
    assert body["id"] == REQUEST_ID
    assert body["status"] == status
    assert body["code"] == body["error_code"] == code
    assert body["title"]
    assert body["detail"]


@pytest.mark.parametrize(
    ("error", "status", "code", "field"),
    [
        (Unauthorized("token expired"), 401, "unauthorized", "Authorization"),
        (Forbidden("token lacks the scope"), 403, "insufficient_scope", "Authorization"),
        (
            Rejected(Reason.INVALID_SIGNATURE, attempts_remaining=3),
            403,
            "invalid_signature",
            "signature",
        ),
        (Rejected(Reason.CHALLENGE_EXPIRED), 409, "challenge_expired", "id"),
        (Rejected(Reason.CHALLENGE_LOCKED), 409, "challenge_locked", "id"),
        (Rejected(Reason.CHALLENGE_ALREADY_VERIFIED), 409, "challenge_already_verified", "id"),
        (Rejected(Reason.DEVICE_LIMIT_REACHED), 409, "device_limit_reached", "person_id"),
    ],
)
def test_list_shape(error: ApiError, status: int, code: str, field: str) -> None:
    rendered_status, _, body = _rendered(error)
    assert rendered_status == status
    assert set(body) == {"errors"}
    (item,) = body["errors"]
    assert set(item) == ITEM_KEYS
    assert item["id"] == REQUEST_ID
    assert item["status"] == status
    assert item["code"] == code
    assert item["title"]
    assert item["source"] == {"field": field, "message": item["detail"]}


@pytest.mark.parametrize("reason", list(Reason))
def test_every_reason_keeps_its_status_and_code(reason: Reason) -> None:
    status, _, body = _rendered(Rejected(reason))
    assert status == HTTP_STATUS[reason]
    code = body["errors"][0]["code"] if "errors" in body else body["code"]
    assert code == reason.value


@pytest.mark.parametrize(
    ("attempts_remaining", "detail"),
    [
        (4, "The signature does not verify; 4 attempts remain."),
        (1, "The signature does not verify; 1 attempt remains."),
        (0, "The signature does not verify; 0 attempts remain."),
        (None, "The signature does not verify."),
    ],
)
def test_invalid_signature_says_how_many_attempts_remain(
    attempts_remaining: int | None, detail: str
) -> None:
    error = Rejected(Reason.INVALID_SIGNATURE, attempts_remaining=attempts_remaining)
    _, _, body = _rendered(error)
    assert body["errors"][0]["detail"] == detail


def test_not_found_from_a_worker_looks_the_same_as_an_unknown_path() -> None:
    _, _, from_worker = _rendered(Rejected(Reason.NOT_FOUND))
    _, _, from_path = _rendered(NotFound())
    assert {k: v for k, v in from_worker.items() if k != "id"} == {
        k: v for k, v in from_path.items() if k != "id"
    }


@pytest.mark.parametrize("error", [ServiceUnavailable(7), VerificationPending(7)])
def test_unavailable_carries_retry_after(error: ApiError) -> None:
    _, headers, _ = _rendered(error)
    assert headers["retry-after"] == "7"


def test_authentication_errors_carry_the_bearer_challenge() -> None:
    assert _rendered(Unauthorized("token expired"))[1]["www-authenticate"] == "Bearer"
    forbidden = _rendered(Forbidden("no scope"))[1]["www-authenticate"]
    assert forbidden == 'Bearer error="insufficient_scope", scope="mfa:device-binding"'


def test_validation_detail_names_fields_not_values() -> None:
    errors = [
        {
            "type": "string_too_long",
            "loc": ("signature",),
            "msg": "String should have at most 144 characters",
            "input": "ab" * 80,
        },
        {"type": "uuid_parsing", "loc": ("body", "x"), "msg": "found `secret-value`"},
        {"type": "value_error", "loc": ("key",), "msg": "Value error, key is not a point on P-256"},
        {"type": "extra_forbidden", "loc": ("k" * 500,), "msg": "Extra inputs are not permitted"},
    ]
    detail = describe_validation_errors(errors)
    assert detail.startswith("Invalid request: signature: String should have at most 144")
    assert "x: is invalid" in detail
    assert "key: key is not a point on P-256" in detail
    assert "k" * 64 + ": is not an accepted field" in detail
    assert "k" * 65 not in detail
    assert "secret-value" not in detail
    assert "abab" not in detail


def test_validation_detail_is_bounded() -> None:
    errors = [
        {"type": "missing", "loc": ("body", f"f{i}"), "msg": "Field required"} for i in range(9)
    ]
    detail = describe_validation_errors(errors)
    assert detail.count("is required") == 5
    assert detail.endswith("and 4 more.")


async def test_unexpected_exception_is_a_generic_500(
    client: httpx.AsyncClient,
    gateway: FakeGateway,
    mint: TokenMint,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gateway.error = RuntimeError("internal-name-db-shard-7")
    headers = mint.headers() | {"X-Request-ID": "trace-500"}
    url = "/v1/mfa/challenges/signatures/6f1d8f3e-52c9-4a8e-9a57-0d5b8a3f4c21"
    with caplog.at_level(logging.ERROR, logger="api.error_handlers"):
        response = await client.put(url, json={"signature": "3045"}, headers=headers)
    assert response.status_code == 500
    assert response.json() == {
        "id": "trace-500",
        "status": 500,
        "code": "generic_error",
        "title": "Generic Error",
        "detail": "There was an error.",
        "error_code": "generic_error",
    }
    assert response.headers["X-Request-ID"] == "trace-500"
    assert "internal-name" not in response.text
    assert "Traceback" not in response.text
    (record,) = [r for r in caplog.records if r.name == "api.error_handlers"]
    assert "trace-500" in record.getMessage()
    logged = caplog.text
    assert headers["Authorization"].split()[1] not in logged
    assert "3045" not in logged
