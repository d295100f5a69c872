"""``python -m provisioning --acls``, as the Kubernetes Job and the compose topics service run
it: as ``admin`` it makes the topics and the ACLs the processes then work with, again and
again without harm; as any other principal it is refused."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from aiokafka.errors import TopicAuthorizationFailedError

from harness.kafka.secure_plane import SecurePlane, prefixed_names, prefixed_settings
from harness.processes import ROOT
from provisioning.acls import ADMIN, API, SMS_GATEWAY, WORKER
from tests.security.clients import consume, publish

pytestmark = [pytest.mark.security, pytest.mark.kafka]


def _provision(plane: SecurePlane, principal: str, prefix: str) -> subprocess.CompletedProcess[str]:
    settings = prefixed_settings(plane.bootstrap, prefix)
    topics = {
        "COMMANDS_TOPIC": settings.commands_topic,
        "EVENTS_TOPIC": settings.events_topic,
        "OTP_DELIVERIES_TOPIC": settings.otp_deliveries_topic,
        "DEAD_LETTER_TOPIC": settings.dead_letter_topic,
        "REPLIES_TOPIC": settings.replies_topic,
        "SIGNALS_TOPIC": settings.signals_topic,
        "AUDIT_CHECKPOINTS_TOPIC": settings.audit_checkpoints_topic,
        "TOPIC_PARTITIONS": "2",
        "TOPIC_REPLICATION_FACTOR": "1",
        "TOPIC_MIN_INSYNC_REPLICAS": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "provisioning", "--acls"],
        env={**os.environ, **plane.environment(principal), **topics},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_as_admin_it_makes_topics_and_acls_the_roles_then_use(
    plane: SecurePlane, plane_prefix: str
) -> None:
    prefix = f"{plane_prefix}.job"
    first = _provision(plane, ADMIN, prefix)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[-1].startswith("ACLs of api, worker, audit, fraud")
    again = _provision(plane, ADMIN, prefix)
    assert again.returncode == 0, again.stderr
    assert "0 created, 0 changed, 7 unchanged" in again.stdout

    names = prefixed_names(prefixed_settings(plane.bootstrap, prefix), prefix)
    commands = f"{prefix}.commands"
    # The command's ACLs use the production groups: the worker's is device-binding-workers.
    await publish(plane, API, commands, b"{}")
    assert await consume(plane, WORKER, commands, "device-binding-workers", at_least=1) == [b"{}"]
    with pytest.raises(TopicAuthorizationFailedError):
        await publish(plane, SMS_GATEWAY, names.otp_deliveries, b"{}")


def test_as_another_principal_it_is_refused(plane: SecurePlane, plane_prefix: str) -> None:
    done = _provision(plane, API, f"{plane_prefix}.rogue")
    assert done.returncode == 1
    # Nothing was created: the api principal may create no topic (and so no ACL was tried).
    assert done.stdout.splitlines()[-1] == "0 created, 0 changed, 0 unchanged; 7 failed"
    assert "TopicAuthorizationFailedError" in done.stdout
    assert "ACLs of" not in done.stdout
    assert plane.credentials.passwords[API] not in done.stdout + done.stderr
