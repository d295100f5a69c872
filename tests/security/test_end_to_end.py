"""Every process of the product on the SASL_SSL broker, each as its own principal: a device is
bound through the HTTP front (real API and worker processes), a bad signature is answered
with its real outcome while every other principal's forged ``{"outcome": "ok"}`` reply is
refused by the broker, and the audit and fraud consumers read every event, the audit consumer
publishing signed checkpoints of its chain that ``verify --checkpoints`` reads back as the
audit principal."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from aiokafka.errors import TopicAuthorizationFailedError

from audit.signing import ensure_key_file
from harness.kafka.secure_plane import SecurePlane
from harness.otp_keys import otp_environment
from harness.processes import PYTHON, ROOT, Children
from harness.stack import StackTopics, auth_environment, start_stack
from harness.topics import OffsetWatch, read_topic
from provisioning.acls import API, AUDIT, DEMO, FRAUD, SMS_GATEWAY
from schemas.checkpoints import AuditCheckpoint
from tests.security.clients import consume, publish
from tests.support.http import Tokens
from tests.support.worker import DeviceKey

pytestmark = [pytest.mark.security, pytest.mark.kafka, pytest.mark.slow]

SIGNATURES = "/v1/mfa/challenges/signatures"
FORGED_REPLY = json.dumps({"outcome": "ok"}).encode()
CATCH_UP_SECONDS = 90.0


@dataclass
class SecureStack:
    url: str
    tokens: Tokens
    plane: SecurePlane
    children: Children
    audit_env: dict[str, str]
    audit_public_key: Path

    async def register(self, http: httpx.AsyncClient, key: DeviceKey, person: str) -> str:
        response = await http.post(
            f"{self.url}/v1/mfa/devices",
            headers=self.tokens.headers(),
            json={"person_id": person, "key_type": "ecdsa-p256", "key": key.public_hex},
        )
        assert response.status_code == 202, response.text
        challenge_id: str = response.json()["challenge"]["id"]
        return challenge_id

    async def otp(self, challenge_id: str) -> str:
        """The OTP as the SMS gateway reads it: as its principal, in its group."""
        names = self.plane.names
        async with asyncio.timeout(60):
            while True:
                values = await consume(
                    self.plane, SMS_GATEWAY, names.otp_deliveries, names.sms_gateway_group
                )
                for value in values:
                    delivery = json.loads(value)
                    if delivery["challenge_id"] == challenge_id:
                        return str(delivery["otp"])

    async def put(self, http: httpx.AsyncClient, challenge_id: str, signature: str) -> int:
        response = await http.put(
            f"{self.url}{SIGNATURES}/{challenge_id}",
            headers=self.tokens.headers(),
            json={"signature": signature},
        )
        return response.status_code


@pytest.fixture
async def secure_stack(
    plane: SecurePlane, plane_prefix: str, tmp_path: Path
) -> AsyncIterator[SecureStack]:
    topics = StackTopics(plane_prefix)
    names = plane.names
    assert (topics.group, topics.replies, topics.otp) == (
        names.worker_group,
        names.replies,
        names.otp_deliveries,
    )
    tokens = Tokens(tmp_path / "keys")
    audit_database = tmp_path / "audit.db"
    audit_key = tmp_path / "audit-signing" / "key.pem"
    audit_public_key = ensure_key_file(audit_key)
    audit_env = {
        **plane.environment(AUDIT),
        "EVENTS_TOPIC": names.events,
        "AUDIT_CONSUMER_GROUP": names.audit_group,
        "AUDIT_DATABASE_URL": f"sqlite+aiosqlite:///{audit_database}",
        "AUDIT_CHECKPOINTS_TOPIC": names.audit_checkpoints,
        "AUDIT_CHECKPOINT_SECONDS": "1",
        "PROVISION_TOPICS": "false",  # the plane's admin made the topics
        "PYTHONUNBUFFERED": "1",
    }
    worker_env = {
        **otp_environment(),
        "KAFKA_BOOTSTRAP_SERVERS": plane.bootstrap,
        **topics.worker_env(),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'store.db'}",
        "AUTO_MIGRATE": "true",
        "PYTHONUNBUFFERED": "1",
    }
    api_env = {
        **topics.api_env(),
        **auth_environment(tokens.jwks_file),
        "REPLY_WAIT_SECONDS": "20",
    }
    with Children(tmp_path / "logs") as children:
        children.spawn(
            "audit",
            ["-m", "audit"],
            env={
                **audit_env,
                "AUDIT_AUTO_MIGRATE": "true",
                "AUDIT_SIGNING_KEY_FILE": str(audit_key),
            },
            role="audit",
        )
        children.spawn(
            "fraud",
            ["-m", "fraud"],
            env={
                **plane.environment(FRAUD),
                "EVENTS_TOPIC": names.events,
                "SIGNALS_TOPIC": names.signals,
                "FRAUD_CONSUMER_GROUP": names.fraud_group,
                "PYTHONUNBUFFERED": "1",
            },
            role="fraud",
        )
        [url] = await start_stack(
            children,
            worker_env=worker_env,
            api_env=api_env,
            workers=1,
            apis=1,
            plane=plane,
        )
        yield SecureStack(url, tokens, plane, children, audit_env, audit_public_key)


async def _await_checkpoint_of(plane: SecurePlane, records: int) -> None:
    """Until a checkpoint on the topic covers ``records`` records."""
    topic = plane.names.audit_checkpoints
    async with asyncio.timeout(CATCH_UP_SECONDS):
        while True:
            published = await read_topic(plane.bootstrap, topic, connection=plane.connection())
            checkpoints = [AuditCheckpoint.model_validate_json(r.value or b"") for r in published]
            if any(checkpoint.seq >= records for checkpoint in checkpoints):
                return
            await asyncio.sleep(0.5)


async def _forge_replies(plane: SecurePlane) -> list[str]:
    """Every non-worker principal tries to publish an ``ok`` reply; who was refused."""
    refused = []
    for principal in (API, AUDIT, FRAUD, SMS_GATEWAY, DEMO):
        try:
            await publish(plane, principal, plane.names.replies, FORGED_REPLY)
        except TopicAuthorizationFailedError:
            refused.append(principal)
    return refused


async def test_every_process_works_over_sasl_ssl_and_forged_replies_are_refused(
    secure_stack: SecureStack,
) -> None:
    stack, plane = secure_stack, secure_stack.plane
    async with httpx.AsyncClient(timeout=30) as http:
        device = DeviceKey()
        bound = await stack.register(http, device, "person-bound")
        assert await stack.put(http, bound, device.sign(await stack.otp(bound))) == 204

        victim = await stack.register(http, DeviceKey(), "person-forged")
        otp = await stack.otp(victim)
        # An impostor's signature of the right OTP, sent while every other principal races a
        # forged "ok" reply onto the replies topic: the broker refuses them all, and the
        # answer is the worker's.
        status, refused = await asyncio.gather(
            stack.put(http, victim, DeviceKey().sign(otp)), _forge_replies(plane)
        )
        assert refused == [API, AUDIT, FRAUD, SMS_GATEWAY, DEMO]
        assert status == 403

        states = {}
        for challenge in (bound, victim):
            url = f"{stack.url}{SIGNATURES}/{challenge}"
            states[challenge] = (await http.get(url, headers=stack.tokens.headers())).json()
        assert {c: state["status"] for c, state in states.items()} == {
            bound: "verified",
            victim: "pending",
        }

    # Only what the worker published is on the replies topic.
    replies = await read_topic(plane.bootstrap, plane.names.replies, connection=plane.connection())
    assert replies
    assert all(record.value != FORGED_REPLY for record in replies)

    # The audit and fraud consumers, each as its principal, read every event.
    events = await read_topic(plane.bootstrap, plane.names.events, connection=plane.connection())
    assert len(events) >= 4  # two created, one verified, one rejected
    watch = OffsetWatch(plane.bootstrap, plane.connection())
    await watch.start()
    try:
        for group in (plane.names.audit_group, plane.names.fraud_group):
            caught_up = await watch.wait_caught_up(
                group, plane.names.events, within=CATCH_UP_SECONDS
            )
            process = group.rpartition(".")[2]
            assert caught_up, f"{group} is behind:\n{stack.children.logs_of(process)[-3000:]}"
    finally:
        await watch.stop()
    audit_database = stack.audit_env["AUDIT_DATABASE_URL"].removeprefix("sqlite+aiosqlite:///")
    with sqlite3.connect(audit_database) as audit:
        [(recorded,)] = audit.execute("SELECT count(*) FROM audit_records").fetchall()
    assert recorded == len(events)

    # The audit principal published a signed checkpoint of the whole chain, and an auditor
    # with its credentials and the public key only checks the trail against it.
    await _await_checkpoint_of(plane, recorded)
    verified = subprocess.run(  # noqa: ASYNC221 - a short command, as an auditor runs it
        [PYTHON, "-m", "audit", "verify", "--checkpoints"],
        env={**stack.audit_env, "AUDIT_VERIFY_KEY_FILE": str(stack.audit_public_key)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr

    # No process wrote a Kafka password (its own or another's) to its log.
    logs = "\n".join(
        stack.children.logs_of(name) for name in ("worker-1", "api-1", "audit", "fraud")
    )
    assert '"message"' in logs
    assert not [p for p in plane.credentials.passwords.values() if p in logs]
