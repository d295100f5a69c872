"""Strict input through the whole product: a body repeating ``signature`` or not declared as
JSON is refused by the API, so the worker never decides on it and the challenge stays
pending with all its attempts."""

from __future__ import annotations

import pytest

from tests.support.worker import DeviceKey
from tests.system.http_stack import SIGNATURES, Stack, assert_flat

pytestmark = pytest.mark.kafka


async def test_a_repeated_signature_is_refused_and_the_challenge_stays_pending(
    stack: Stack,
) -> None:
    key = DeviceKey()
    challenge_id = (await stack.register(key))["challenge"]["id"]
    otp = await stack.otp(challenge_id)
    valid, wrong = key.sign(otp), DeviceKey().sign(otp)
    url = f"{SIGNATURES}/{challenge_id}"
    json_headers = {**stack.auth(), "Content-Type": "application/json"}

    # A reader keeping the first value sees `wrong`, pydantic alone would verify `valid`.
    for first, last in ((wrong, valid), (valid, wrong), (valid, valid)):
        content = f'{{"signature": "{first}", "signature": "{last}"}}'.encode()
        response = await stack.http.put(url, content=content, headers=json_headers)
        body = assert_flat(response, 400, "validation_error")
        assert body["detail"] == "Invalid request: signature: appears more than once."
        assert valid not in response.text

    # The right signature, declared as something else than JSON: not read either.
    plain = {**stack.auth(), "Content-Type": "text/plain"}
    content = f'{{"signature": "{valid}"}}'.encode()
    response = await stack.http.put(url, content=content, headers=plain)
    assert_flat(response, 415, "unsupported_media_type")

    pending = await stack.http.get(url, headers=stack.auth())
    assert pending.status_code == 200, pending.text
    assert pending.json()["status"] == "pending"
    assert pending.json()["attempts_remaining"] == 5

    # The same signature sent once verifies; nothing was decided in between.
    verified = await stack.put(challenge_id, valid)
    assert verified.status_code == 204, verified.text
    events = await stack.events_of(challenge_id, count=2)
    assert [event["type"] for event in events] == [
        "mfa.device_binding.challenge_created",
        "mfa.device_binding.signature_verified",
    ]
    assert events[1]["data"]["attempt"] == 1
