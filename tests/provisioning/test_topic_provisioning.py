"""``python -m provisioning`` against a real broker: creates every topic with its configs,
corrects existing ones (configs set one by one, partitions only added), changes nothing on a
second run or a dry run, and refuses what would break writes.

The session broker has one node, so these runs use replication factor 1 and
min.insync.replicas 1; every test names its own topics. The topics are read back with a
plain admin client, not with the code under test.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from pydantic import ValidationError

from harness.topics import unique_name
from provisioning.__main__ import reconcile_topics
from provisioning.reconciler import reconcile
from provisioning.specs import ProvisioningSettings, product_topics

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 4
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
ROLES = ("commands", "events", "otp", "dlq", "replies", "signals", "checkpoints")
_SET_ON_TOPIC = 1  # DescribeConfigs config_source DYNAMIC_TOPIC_CONFIG


@dataclass(frozen=True)
class Topics:
    """One test's topic names, by role."""

    prefix: str

    def __getitem__(self, role: str) -> str:
        return f"{self.prefix}.{role}"

    @property
    def names(self) -> list[str]:
        return [self[role] for role in ROLES]

    def environment(self, bootstrap: str, *, replicas: int = 1, in_sync: int = 1) -> dict[str, str]:
        """The provisioning command's environment, as a deployment would set it."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "COMMANDS_TOPIC": self["commands"],
            "EVENTS_TOPIC": self["events"],
            "OTP_DELIVERIES_TOPIC": self["otp"],
            "DEAD_LETTER_TOPIC": self["dlq"],
            "REPLIES_TOPIC": self["replies"],
            "SIGNALS_TOPIC": self["signals"],
            "AUDIT_CHECKPOINTS_TOPIC": self["checkpoints"],
            "TOPIC_PARTITIONS": str(PARTITIONS),
            "TOPIC_REPLICATION_FACTOR": str(replicas),
            "TOPIC_MIN_INSYNC_REPLICAS": str(in_sync),
            "EVENTS_RETENTION_DAYS": "30",
        }

    def settings(self, bootstrap: str) -> ProvisioningSettings:
        return ProvisioningSettings(
            kafka_bootstrap_servers=bootstrap,
            commands_topic=self["commands"],
            events_topic=self["events"],
            otp_deliveries_topic=self["otp"],
            dead_letter_topic=self["dlq"],
            replies_topic=self["replies"],
            signals_topic=self["signals"],
            audit_checkpoints_topic=self["checkpoints"],
            topic_partitions=PARTITIONS,
            topic_replication_factor=1,
            topic_min_insync_replicas=1,
            events_retention_days=30,
        )


@dataclass(frozen=True)
class Observed:
    partitions: int
    configs: dict[str, str]  # those set on the topic itself


@pytest.fixture
def topics() -> Topics:
    return Topics(unique_name("provision"))


@pytest.fixture
async def admin(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


async def observe(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, Observed]:
    """The topics of ``names`` that exist: partitions and the configs set on each."""
    metadata = {topic["topic"]: topic for topic in await admin.describe_topics()}
    present = [name for name in names if name in metadata]
    if not present:
        return {}
    responses = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name) for name in present]
    )
    configs = {
        resource["resource_name"]: {
            entry["config_names"]: entry["config_value"]
            for entry in resource["config_entries"]
            if entry["config_source"] == _SET_ON_TOPIC
        }
        for response in responses
        for resource in response.to_object()["resources"]
    }
    return {name: Observed(len(metadata[name]["partitions"]), configs[name]) for name in present}


async def precreate(
    admin: AIOKafkaAdminClient, name: str, *, partitions: int, configs: dict[str, str]
) -> None:
    response = await admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, topic_configs=configs)]
    )
    assert [error["error_code"] for error in response.to_object()["topic_errors"]] == [0]
    # Metadata shows a new topic a moment after it is created: wait, so that each test
    # starts from the state it set up (test_a_topic_that_turns_out_to_exist_is_corrected_too
    # covers a run that starts in that moment).
    async with asyncio.timeout(30):
        while name not in await observe(admin, [name]):
            await asyncio.sleep(0.1)


async def run_command(env: dict[str, str], *args: str) -> tuple[int, list[str]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "provisioning",
        *args,
        env={**os.environ, **env},
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )
    stdout, _ = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, stdout.decode().splitlines()


@pytest.mark.kafka
async def test_first_run_creates_every_topic_and_a_second_changes_nothing(
    kafka_bootstrap: str, topics: Topics, admin: AIOKafkaAdminClient
) -> None:
    settings = topics.settings(kafka_bootstrap)

    first = await reconcile_topics(settings)

    assert first.ok, first.errors
    assert [plan.spec.name for plan in first.plans if plan.missing] == topics.names
    created = await observe(admin, topics.names)
    assert sorted(created) == sorted(topics.names)
    for name, topic in created.items():
        assert topic.partitions == PARTITIONS, name
        # Pinned on the topic, not inherited from whatever the broker's defaults are.
        assert topic.configs["cleanup.policy"] == "delete", name
        assert topic.configs["min.insync.replicas"] == "1", name
    retention = {role: int(created[topics[role]].configs["retention.ms"]) for role in ROLES}
    otp = created[topics["otp"]].configs
    # An OTP is gone within the hour: retention plus one segment plus the broker's 5-minute
    # check, and counted from the broker's clock.
    assert retention["otp"] + int(otp["segment.ms"]) + 5 * 60_000 <= HOUR_MS
    assert otp["message.timestamp.type"] == "LogAppendTime"
    assert HOUR_MS <= retention["replies"] <= DAY_MS
    assert int(created[topics["replies"]].configs["segment.ms"]) <= retention["replies"]
    assert retention["events"] == retention["signals"] == 30 * DAY_MS
    assert retention["dlq"] == 14 * DAY_MS
    assert retention["commands"] == 7 * DAY_MS
    assert retention["checkpoints"] == -1  # the audit trail's anchor: never deleted

    second = await reconcile_topics(settings)

    assert second.ok, second.errors
    assert all(plan.unchanged for plan in second.plans)
    assert second.lines() == [
        *(f"unchanged {name}" for name in topics.names),
        "0 created, 0 changed, 7 unchanged",
    ]
    assert await observe(admin, topics.names) == created


@pytest.mark.kafka
async def test_a_wrong_retention_is_corrected_and_other_configs_are_kept(
    kafka_bootstrap: str, topics: Topics, admin: AIOKafkaAdminClient
) -> None:
    await precreate(
        admin,
        topics["events"],
        partitions=PARTITIONS,
        configs={"retention.ms": "60000", "max.message.bytes": "500000"},
    )

    report = await reconcile_topics(topics.settings(kafka_bootstrap))

    assert report.ok, report.errors
    events = next(plan for plan in report.plans if plan.spec.name == topics["events"])
    assert not events.missing
    assert {(change.name, change.current) for change in events.config_changes} >= {
        ("retention.ms", "60000")
    }
    assert f"changed {topics['events']}: retention.ms 60000 -> {30 * DAY_MS}" in report.lines()
    corrected = (await observe(admin, [topics["events"]]))[topics["events"]]
    assert corrected.configs["retention.ms"] == str(30 * DAY_MS)
    assert corrected.configs["min.insync.replicas"] == "1"
    # Set one by one: a config this command does not manage survives.
    assert corrected.configs["max.message.bytes"] == "500000"


class StaleMetadata:
    """An admin client whose first metadata answer predates one topic, as a broker's may for
    a topic created a moment before (or by another run at the same time)."""

    def __init__(self, admin: AIOKafkaAdminClient, hidden: str) -> None:
        self._admin = admin
        self._hidden: str | None = hidden

    def __getattr__(self, name: str) -> Any:
        return getattr(self._admin, name)

    async def describe_topics(self) -> list[dict[str, Any]]:
        topics: list[dict[str, Any]] = await self._admin.describe_topics()
        hidden, self._hidden = self._hidden, None
        return [topic for topic in topics if topic["topic"] != hidden]


@pytest.mark.kafka
async def test_a_topic_that_turns_out_to_exist_is_corrected_too(
    kafka_bootstrap: str, topics: Topics, admin: AIOKafkaAdminClient
) -> None:
    await precreate(admin, topics["events"], partitions=2, configs={"retention.ms": "60000"})
    specs = product_topics(topics.settings(kafka_bootstrap))

    report = await reconcile(StaleMetadata(admin, topics["events"]), specs, dry_run=False)

    assert report.ok, report.errors
    lines = report.lines()
    assert f"changed {topics['events']}: retention.ms 60000 -> {30 * DAY_MS}" in lines
    assert lines[-1] == "6 created, 1 changed, 0 unchanged"
    events = (await observe(admin, [topics["events"]]))[topics["events"]]
    assert events.partitions == PARTITIONS
    assert events.configs["retention.ms"] == str(30 * DAY_MS)


@pytest.mark.kafka
async def test_partitions_are_added_but_never_removed(
    kafka_bootstrap: str, topics: Topics, admin: AIOKafkaAdminClient
) -> None:
    await precreate(admin, topics["commands"], partitions=2, configs={})
    await precreate(admin, topics["dlq"], partitions=PARTITIONS + 3, configs={})

    report = await reconcile_topics(topics.settings(kafka_bootstrap))

    assert report.ok, report.errors
    observed = await observe(admin, [topics["commands"], topics["dlq"]])
    assert observed[topics["commands"]].partitions == PARTITIONS
    assert observed[topics["dlq"]].partitions == PARTITIONS + 3
    lines = report.lines()
    assert any(
        line.startswith(f"changed {topics['commands']}: partitions 2 -> {PARTITIONS}")
        for line in lines
    )
    assert (
        f"note {topics['dlq']}: {PARTITIONS + 3} partitions, more than the {PARTITIONS} "
        "wanted: partitions are never removed"
    ) in lines


@pytest.mark.kafka
async def test_the_command_dry_run_changes_nothing_then_the_real_run_does(
    kafka_bootstrap: str, topics: Topics, admin: AIOKafkaAdminClient
) -> None:
    await precreate(admin, topics["events"], partitions=2, configs={"retention.ms": "60000"})
    before = await observe(admin, topics.names)
    env = topics.environment(kafka_bootstrap)

    code, lines = await run_command(env, "--dry-run")

    assert code == 0, lines
    assert f"would change {topics['events']}: retention.ms 60000 -> {30 * DAY_MS}" in lines
    assert any(line.startswith(f"would create {topics['otp']}: ") for line in lines)
    assert lines[-1] == "6 to create, 1 to change, 0 unchanged; dry run, nothing changed"
    assert await observe(admin, topics.names) == before

    code, lines = await run_command(env)

    assert code == 0, lines
    assert lines[-1] == "6 created, 1 changed, 0 unchanged"
    after = await observe(admin, topics.names)
    assert sorted(after) == sorted(topics.names)
    assert after[topics["events"]].partitions == PARTITIONS
    assert after[topics["events"]].configs["retention.ms"] == str(30 * DAY_MS)


@pytest.mark.kafka
async def test_what_the_cluster_cannot_hold_fails_and_changes_nothing(
    kafka_bootstrap: str, topics: Topics, admin: AIOKafkaAdminClient
) -> None:
    # Production settings on the one-broker cluster: three replicas cannot be placed, and
    # an existing one-replica topic must not get min.insync.replicas=2, which would refuse
    # every acks=all write to it.
    await precreate(
        admin, topics["events"], partitions=PARTITIONS, configs={"retention.ms": "60000"}
    )
    env = topics.environment(kafka_bootstrap, replicas=3, in_sync=2)

    code, lines = await run_command(env)

    assert code == 1
    assert any(
        line.startswith(f"failed {topics['events']}: replication factor 1 is below ")
        for line in lines
    )
    for role in ROLES:
        if role != "events":
            assert any(
                line.startswith(f"failed {topics[role]}: creating it: InvalidReplicationFactor")
                for line in lines
            ), (role, lines)
    observed = await observe(admin, topics.names)
    assert list(observed) == [topics["events"]]
    assert observed[topics["events"]].configs == {"retention.ms": "60000"}


@pytest.mark.parametrize(
    ("replicas", "in_sync"),
    [(3, 3), (3, 4), (1, 2)],
)
def test_settings_refuse_a_min_insync_that_would_stop_writes(replicas: int, in_sync: int) -> None:
    with pytest.raises(ValidationError, match="TOPIC_MIN_INSYNC_REPLICAS"):
        ProvisioningSettings(topic_replication_factor=replicas, topic_min_insync_replicas=in_sync)


def test_production_defaults() -> None:
    # The declared defaults, whatever this machine's environment says.
    defaults = {
        name: field.default
        for name, field in ProvisioningSettings.model_fields.items()
        if name.startswith("topic_") or name == "events_retention_days"
    }
    assert defaults == {
        "topic_partitions": 12,
        "topic_replication_factor": 3,
        "topic_min_insync_replicas": 2,
        "events_retention_days": 30,
    }
