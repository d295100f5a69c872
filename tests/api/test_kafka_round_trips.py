"""Against a real broker: each endpoint's command goes out, the worker's reply comes back."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence

import pytest

from api.rejections import Rejected
from api.request_ids import REQUEST_ID_HEADER
from schemas.commands import (
    Command,
    GetChallenge,
    GetDevice,
    ListDevices,
    RegisterDevice,
    UnbindDevice,
    VerifySignature,
    command_key,
)
from schemas.reasons import HTTP_STATUS, Reason
from schemas.replies import Reply
from tests.api.apps import MakeSettings, Topics, instance_id, running_app
from tests.api.fakes import rejected, succeed
from tests.api.requests import SIGNATURE, registration
from tests.api.responder import Responder
from tests.api.shapes import assert_flat, assert_listed, rejection_field
from tests.api.tokens import TokenMint
from tests.support.claims import CLIENT_ID

pytestmark = pytest.mark.kafka


def _always(answer: Callable[[Command], Reply]) -> Callable[[Command], Sequence[Reply]]:
    return lambda command: [answer(command)]


async def test_device_binding_round_trip(
    kafka_bootstrap: str, topics: Topics, kafka_settings: MakeSettings, mint: TokenMint
) -> None:
    settings = kafka_settings(instance_id=instance_id("round-trip"))
    async with (
        Responder(
            kafka_bootstrap,
            commands_topic=topics.commands,
            replies_topic=topics.replies,
            script=_always(succeed),
        ) as worker,
        running_app(settings) as api,
    ):
        headers = mint.headers() | {REQUEST_ID_HEADER: "trace-round-trip"}
        created = await api.client.post("/v1/mfa/devices", json=registration(), headers=headers)
        assert created.status_code == 202, created.text
        device_id = created.json()["id"]
        challenge_id = created.json()["challenge"]["id"]
        challenge_url = f"/v1/mfa/challenges/signatures/{challenge_id}"
        device_url = f"/v1/mfa/devices/{device_id}"

        verified = await api.client.put(
            challenge_url, json={"signature": SIGNATURE}, headers=headers
        )
        assert verified.status_code == 204, verified.text
        challenge = await api.client.get(challenge_url, headers=headers)
        assert challenge.status_code == 200, challenge.text
        assert challenge.json()["id"] == challenge_id
        device = await api.client.get(device_url, headers=headers)
        assert device.status_code == 200, device.text
        assert device.json()["id"] == device_id
        listed = await api.client.get(
            "/v1/mfa/devices", params={"filter[person_id]": "person-1"}, headers=headers
        )
        assert listed.status_code == 200, listed.text
        unbound = await api.client.delete(device_url, headers=headers)
        assert unbound.status_code == 204, unbound.text

    kinds = [type(command) for _, command in worker.received]
    assert kinds == [
        RegisterDevice,
        VerifySignature,
        GetChallenge,
        GetDevice,
        ListDevices,
        UnbindDevice,
    ]
    for key, command in worker.received:
        assert key == command_key(command)
        assert command.reply_to == settings.instance_id
        assert command.request_id == "trace-round-trip"
        assert command.client_id == CLIENT_ID
    assert len({command.command_id for _, command in worker.received}) == 6


@pytest.mark.parametrize("reason", sorted(Reason.__members__.values()))
async def test_each_rejection_reaches_the_caller(
    kafka_bootstrap: str,
    topics: Topics,
    kafka_settings: MakeSettings,
    mint: TokenMint,
    reason: Reason,
) -> None:
    settings = kafka_settings(instance_id=instance_id("rejections"))

    def refuse(command: Command) -> Sequence[Reply]:
        return [rejected(command, reason, attempts_remaining=3)]

    async with (
        Responder(
            kafka_bootstrap,
            commands_topic=topics.commands,
            replies_topic=topics.replies,
            script=refuse,
        ),
        running_app(settings) as api,
    ):
        url = f"/v1/mfa/challenges/signatures/{uuid.uuid4()}"
        response = await api.client.put(url, json={"signature": SIGNATURE}, headers=mint.headers())

    status = HTTP_STATUS[reason]
    if status == 404:
        body = assert_flat(response, 404, "not_found")
        assert body["detail"] == "The requested resource does not exist."
        return
    item = assert_listed(response, status, reason.value, rejection_field(reason))
    if reason is Reason.INVALID_SIGNATURE:
        assert item["detail"] == "The signature does not verify; 3 attempts remain."
    else:
        assert item["detail"] == Rejected(reason).detail
