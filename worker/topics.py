"""The product's Kafka topics: what each one is configured with, and the command that creates
them on a cluster or brings existing ones to that configuration.

    python -m worker.topics [--dry-run]

The command (a deployment step: a Kubernetes Job, a one-shot compose service) reads
``KAFKA_BOOTSTRAP_SERVERS``, the topic names (``COMMANDS_TOPIC``, ``EVENTS_TOPIC``,
``OTP_DELIVERIES_TOPIC``, ``DEAD_LETTER_TOPIC``, ``REPLIES_TOPIC``, ``SIGNALS_TOPIC``) and
``TOPIC_PARTITIONS`` (12), ``TOPIC_REPLICATION_FACTOR`` (3), ``TOPIC_MIN_INSYNC_REPLICAS``
(2), ``EVENTS_RETENTION_DAYS`` (30). It is idempotent: a missing topic is created; an
existing one gets the configs below set on it (one by one, leaving any other config of the
topic alone) and more partitions when it has fewer than wanted. Nothing is ever deleted or
decreased, and a replication factor is never changed (that is a partition reassignment, an
operator's decision): both are reported instead. ``--dry-run`` asks the cluster to validate
the same plan and changes nothing.

The worker also calls ``provision_topics`` at start-up (``PROVISION_TOPICS``, on by
default) so that a development broker, which auto-creates nothing, has its topics: it only
creates the missing ones, with the development partitions and replication factor.

No topic is compacted (``cleanup.policy=delete`` everywhere). Compaction keeps the newest
record per key and suits topics whose records are the current state of their key; none of
these is:

- commands: several commands share a challenge id (create, then each signature attempt);
  compacting would drop accepted commands before a worker processed them (SPEC §6).
- events (and fraud signals): a history of facts, several per challenge; the audit trail
  and the fraud windows need every one, not the last.
- OTP deliveries: compaction would keep each person's newest OTP for ever, the opposite of
  the short retention a secret needs.
- replies and the DLQ: every key (command id, or whatever a bad producer sent) is unique
  or meaningless, so compaction would remove nothing that retention does not.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, for_code
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import Array, Boolean, Int8, Int16, Int32, Schema, String
from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas import topics
from worker.settings import WorkerSettings

logger = logging.getLogger(__name__)

_MINUTE_MS = 60 * 1000
_HOUR_MS = 60 * _MINUTE_MS
_DAY_MS = 24 * _HOUR_MS

# Commands are accepted work: a week covers a worker outage over a long weekend, so nothing
# accepted is lost (SPEC §6) even though a challenge itself expires after minutes.
COMMANDS_RETENTION_MS = 7 * _DAY_MS
# Unparseable commands wait here for someone to look at them and replay or discard them.
DEAD_LETTER_RETENTION_MS = 14 * _DAY_MS
# A reply is read within REPLY_WAIT_SECONDS or never (a replica reads from the end of the
# topic); hours are kept only to debug a recent incident.
REPLIES_RETENTION_MS = 6 * _HOUR_MS
REPLIES_SEGMENT_MS = 1 * _HOUR_MS
# OTPs are secrets that expire within 10 minutes (SPEC §4); the SMS gateway reads them in
# seconds. Kafka deletes whole segments only, once their newest record is older than
# retention.ms, and checks every log.retention.check.interval.ms (5 minutes by default):
# 40 minutes of retention on 10-minute segments removes every OTP within about 55 minutes,
# that is within the hour SPEC §5 allows. With the default 7-day segments a busy topic would
# keep them for days.
OTP_RETENTION_MS = 40 * _MINUTE_MS
OTP_SEGMENT_MS = 10 * _MINUTE_MS
# Events are read by the audit trail, the fraud signals and other teams. 30 days lets a
# consumer that was down, or an audit database restored from a backup, catch up from the
# topic; the lasting record is the audit trail's own database, and the events carry personal
# data (person and device ids), so the topic does not keep them for ever.
DEFAULT_EVENTS_RETENTION_DAYS = 30


@dataclass(frozen=True)
class TopicSpec:
    """A topic as it should be."""

    name: str
    partitions: int
    replication_factor: int
    configs: Mapping[str, str]


def _configs(retention_ms: int, **extra: str) -> dict[str, str]:
    return {"cleanup.policy": "delete", "retention.ms": str(retention_ms), **extra}


def _otp_configs() -> dict[str, str]:
    return _configs(
        OTP_RETENTION_MS,
        **{
            "segment.ms": str(OTP_SEGMENT_MS),
            # Retention then counts from when the broker stored the OTP, not from a
            # producer's clock, which could be set ahead and keep a secret longer.
            "message.timestamp.type": "LogAppendTime",
        },
    )


class ProvisioningSettings(BaseSettings):
    """Settings of ``python -m worker.topics``: production defaults."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    commands_topic: str = topics.COMMANDS
    events_topic: str = topics.EVENTS
    otp_deliveries_topic: str = topics.OTP_DELIVERIES
    dead_letter_topic: str = topics.COMMANDS_DLQ
    replies_topic: str = topics.REPLIES
    signals_topic: str = topics.SUSPICIOUS_ACTIVITY
    # Partitions bound the parallelism of every consumer group: worker processes times
    # CONSUMERS_PER_PROCESS beyond this count idle. They can be added later (keys then map
    # to other partitions), never removed.
    topic_partitions: int = Field(default=12, ge=1)
    topic_replication_factor: int = Field(default=3, ge=1)
    # With acks=all, a write needs this many replicas in sync: 2 of 3 survives one broker
    # down (a rolling restart) without refusing writes or losing acknowledged ones.
    topic_min_insync_replicas: int = Field(default=2, ge=1)
    # At least a week: shorter would lose events for a consumer down over a long weekend.
    events_retention_days: int = Field(default=DEFAULT_EVENTS_RETENTION_DAYS, ge=7)

    @model_validator(mode="after")
    def _replicas_can_be_in_sync(self) -> ProvisioningSettings:
        replicas, in_sync = self.topic_replication_factor, self.topic_min_insync_replicas
        if in_sync > replicas:
            # Every acks=all write would be refused.
            raise ValueError(
                f"TOPIC_MIN_INSYNC_REPLICAS ({in_sync}) exceeds "
                f"TOPIC_REPLICATION_FACTOR ({replicas})"
            )
        if replicas > 1 and in_sync == replicas:
            # One broker down would stop every write: keep one replica of slack.
            raise ValueError(
                f"TOPIC_MIN_INSYNC_REPLICAS ({in_sync}) must be less than "
                f"TOPIC_REPLICATION_FACTOR ({replicas})"
            )
        return self


def _worker_configs(
    settings: WorkerSettings | ProvisioningSettings, *, events_retention_ms: int
) -> dict[str, dict[str, str]]:
    """The configs of the topics the worker writes or reads, by topic name."""
    return {
        settings.commands_topic: _configs(COMMANDS_RETENTION_MS),
        settings.events_topic: _configs(events_retention_ms),
        settings.otp_deliveries_topic: _otp_configs(),
        settings.dead_letter_topic: _configs(DEAD_LETTER_RETENTION_MS),
        settings.replies_topic: _configs(
            REPLIES_RETENTION_MS, **{"segment.ms": str(REPLIES_SEGMENT_MS)}
        ),
    }


def product_topics(settings: ProvisioningSettings) -> list[TopicSpec]:
    """Every topic of the product, as the provisioning command wants it."""
    events_retention_ms = settings.events_retention_days * _DAY_MS
    configs = _worker_configs(settings, events_retention_ms=events_retention_ms)
    # Alerts are published facts read by another team, like the events.
    configs[settings.signals_topic] = _configs(events_retention_ms)
    in_sync = {"min.insync.replicas": str(settings.topic_min_insync_replicas)}
    return [
        TopicSpec(
            name,
            partitions=settings.topic_partitions,
            replication_factor=settings.topic_replication_factor,
            configs={**topic_configs, **in_sync},
        )
        for name, topic_configs in configs.items()
    ]


class ProvisioningError(Exception):
    """The cluster refused to create a topic."""


# Kafka protocol error codes and config sources this module reads.
_TOPIC_EXISTS = 36
_DYNAMIC_TOPIC_CONFIG = 1  # DescribeConfigs config_source: set on the topic itself
_SET = 0  # IncrementalAlterConfigs config_operation


@dataclass(frozen=True)
class BrokerError:
    code: int
    message: str | None

    def __str__(self) -> str:
        name = for_code(self.code).__name__
        return f"{name}: {self.message}" if self.message else name


async def provision_topics(settings: WorkerSettings) -> None:
    """Create the worker's topics that are missing (its start-up, on a development broker).

    The same retentions as in production (an OTP is a secret on a laptop too), with the
    worker's partitions and replication factor; the broker's min.insync.replicas applies,
    since a development replication factor is usually 1.
    """
    configs = _worker_configs(settings, events_retention_ms=DEFAULT_EVENTS_RETENTION_DAYS * _DAY_MS)
    specs = [
        TopicSpec(name, settings.topic_partitions, settings.topic_replication_factor, topic_configs)
        for name, topic_configs in configs.items()
    ]
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        if not missing:
            return
        failures = await _create(admin, missing, validate_only=False)
        # Another worker may have created some at the same moment: that is what we wanted.
        failures = {name: error for name, error in failures.items() if error.code != _TOPIC_EXISTS}
        if failures:
            raise ProvisioningError(
                "; ".join(f"{name}: {error}" for name, error in failures.items())
            )
        logger.info("created topics %s", [spec.name for spec in missing])
    finally:
        await admin.close()


@dataclass(frozen=True)
class ConfigChange:
    name: str
    current: str | None  # the effective value; None when the broker reports none
    on_topic: bool  # whether the current value is set on the topic (else a broker default)
    wanted: str

    def __str__(self) -> str:
        source = "" if self.on_topic else " (broker default)"
        return f"{self.name} {self.current}{source} -> {self.wanted}"


@dataclass(frozen=True)
class TopicPlan:
    """One topic's difference between the cluster and its spec."""

    spec: TopicSpec
    partitions: int | None  # None: the topic does not exist
    replication_factor: int | None
    config_changes: tuple[ConfigChange, ...] = ()

    @property
    def missing(self) -> bool:
        return self.partitions is None

    @property
    def adds_partitions(self) -> bool:
        return self.partitions is not None and self.partitions < self.spec.partitions

    @property
    def unchanged(self) -> bool:
        return not (self.missing or self.adds_partitions or self.config_changes)

    def notes(self) -> list[str]:
        """What differs from the spec and is deliberately left as it is."""
        notes = []
        if self.partitions is not None and self.partitions > self.spec.partitions:
            notes.append(
                f"{self.partitions} partitions, more than the {self.spec.partitions} wanted: "
                "partitions are never removed"
            )
        if self.replication_factor is not None and (
            self.replication_factor != self.spec.replication_factor
        ):
            notes.append(
                f"replication factor {self.replication_factor}, "
                f"wanted {self.spec.replication_factor}: not changed here "
                "(that takes a partition reassignment)"
            )
        return notes


@dataclass
class Report:
    """What a run planned, and what the cluster refused (by topic)."""

    plans: list[TopicPlan]
    dry_run: bool
    errors: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def replace(self, other: Report) -> None:
        """Take ``other``'s plans and errors for the topics it covers (a second attempt)."""
        again = {plan.spec.name: plan for plan in other.plans}
        self.plans = [again.get(plan.spec.name, plan) for plan in self.plans]
        for name in again:
            self.errors.pop(name, None)
        self.errors.update(other.errors)

    def lines(self) -> list[str]:
        """One line per action, note or failure, then a summary."""
        created, changed = (
            ("would create", "would change") if self.dry_run else ("created", "changed")
        )
        lines: list[str] = []
        for plan in self.plans:
            name = plan.spec.name
            if name in self.errors:
                lines.extend(f"failed {name}: {error}" for error in self.errors[name])
                continue
            if plan.missing:
                configs = ", ".join(f"{k}={v}" for k, v in sorted(plan.spec.configs.items()))
                lines.append(
                    f"{created} {name}: "
                    f"{plan.spec.partitions} partitions, "
                    f"replication factor {plan.spec.replication_factor}, {configs}"
                )
            changes = [str(config) for config in plan.config_changes]
            if plan.adds_partitions:
                changes.append(
                    f"partitions {plan.partitions} -> {plan.spec.partitions} (keys move to "
                    "other partitions; restart the API replicas and the fraud consumer so "
                    "they read the new ones)"
                )
            lines.extend(f"{changed} {name}: {change}" for change in changes)
            if plan.unchanged:
                lines.append(f"unchanged {name}")
            lines.extend(f"note {name}: {note}" for note in plan.notes())
        lines.append(self._summary())
        return lines

    def _summary(self) -> str:
        done = [plan for plan in self.plans if plan.spec.name not in self.errors]
        missing = sum(plan.missing for plan in done)
        unchanged = sum(plan.unchanged for plan in done)
        altered = len(done) - missing - unchanged
        if self.dry_run:
            summary = (
                f"{missing} to create, {altered} to change, {unchanged} unchanged; "
                "dry run, nothing changed"
            )
        else:
            summary = f"{missing} created, {altered} changed, {unchanged} unchanged"
        if self.errors:
            summary += f"; {len(self.errors)} failed"
        return summary


async def _existing_topics(
    admin: Any, names: set[str], *, wait_seconds: float = 10.0
) -> dict[str, tuple[int, int] | BrokerError]:
    """Partitions and replication factor of those of ``names`` that exist."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    while True:
        # Metadata for all topics, filtered here: asking for named topics would let a broker
        # with auto.create.topics.enable create a missing one with its defaults.
        found: dict[str, tuple[int, int] | BrokerError] = {}
        for topic in await admin.describe_topics():
            name, code = topic["topic"], topic["error_code"]
            if name not in names:
                continue
            if code:
                found[name] = BrokerError(code, "in the topic's metadata")
                continue
            partitions = topic["partitions"]
            replicas = max((len(p["replicas"]) for p in partitions), default=0)
            found[name] = (len(partitions), replicas)
        # A topic created a moment ago reports LEADER_NOT_AVAILABLE until its partitions
        # have leaders: its partition count is not known yet.
        settling = any(isinstance(state, BrokerError) for state in found.values())
        if not settling or loop.time() >= deadline:
            return found
        await asyncio.sleep(0.2)


async def _topic_configs(
    admin: Any, names: Sequence[str]
) -> dict[str, dict[str, tuple[str | None, bool]] | BrokerError]:
    """Each topic's effective configs: name -> (value, set on the topic)."""
    if not names:
        return {}
    resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
    result: dict[str, dict[str, tuple[str | None, bool]] | BrokerError] = {}
    for response in await admin.describe_configs(resources):
        for resource in response.to_object()["resources"]:
            name = resource["resource_name"]
            if resource["error_code"]:
                result[name] = BrokerError(resource["error_code"], resource["error_message"])
                continue
            result[name] = {
                entry["config_names"]: (
                    entry["config_value"],
                    entry["config_source"] == _DYNAMIC_TOPIC_CONFIG,
                )
                for entry in resource["config_entries"]
            }
    return result


async def plan_topics(
    admin: Any, specs: Sequence[TopicSpec]
) -> tuple[list[TopicPlan], dict[str, list[str]]]:
    """Compare the cluster with ``specs``; also the topics that must be left alone, and why."""
    existing = await _existing_topics(admin, {spec.name for spec in specs})
    configs = await _topic_configs(admin, [spec.name for spec in specs if spec.name in existing])
    plans = []
    errors: dict[str, list[str]] = {}
    for spec in specs:
        if spec.name not in existing:
            plans.append(TopicPlan(spec, partitions=None, replication_factor=None))
            continue
        state = existing[spec.name]
        if isinstance(state, BrokerError):
            errors[spec.name] = [f"reading its metadata: {state}"]
            plans.append(TopicPlan(spec, partitions=None, replication_factor=None))
            continue
        partitions, replicas = state
        in_sync = spec.configs.get("min.insync.replicas")
        if in_sync is not None and replicas < int(in_sync):
            # Setting it would make every acks=all write to the topic fail.
            errors[spec.name] = [
                f"replication factor {replicas} is below min.insync.replicas {in_sync}: "
                "left alone; add replicas first (a partition reassignment)"
            ]
        current = configs.get(spec.name, {})
        if isinstance(current, BrokerError):
            errors.setdefault(spec.name, []).append(f"reading its configs: {current}")
            current = {}
        # A value equal to the wanted one but inherited from the broker is set on the topic
        # too: a later change of the broker's default must not change this topic.
        changes = tuple(
            ConfigChange(key, value, on_topic, wanted)
            for key, wanted in sorted(spec.configs.items())
            for value, on_topic in [current.get(key, (None, False))]
            if value != wanted or not on_topic
        )
        plans.append(TopicPlan(spec, partitions, replicas, changes))
    return plans, errors


async def _create(
    admin: Any, specs: Sequence[TopicSpec], *, validate_only: bool
) -> dict[str, BrokerError]:
    new_topics = [
        NewTopic(
            spec.name,
            num_partitions=spec.partitions,
            replication_factor=spec.replication_factor,
            topic_configs=dict(spec.configs),
        )
        for spec in specs
    ]
    # aiokafka returns per-topic errors in the response instead of raising them.
    response = await admin.create_topics(new_topics, validate_only=validate_only)
    return {
        error["topic"]: BrokerError(error["error_code"], error["error_message"])
        for error in response.to_object()["topic_errors"]
        if error["error_code"]
    }


async def _alter(
    admin: Any, plans: Sequence[TopicPlan], *, validate_only: bool
) -> dict[str, BrokerError]:
    resources = [
        (
            int(ConfigResourceType.TOPIC),
            plan.spec.name,
            [(change.name, _SET, change.wanted) for change in plan.config_changes],
        )
        for plan in plans
    ]
    # Sent the way aiokafka sends its own admin requests (a private method: pyproject pins
    # aiokafka below 0.15, and tests/integration/test_topic_provisioning.py exercises it).
    # Any broker takes it and forwards it to the controller.
    response = await admin._send_request(_IncrementalAlterConfigs(resources, validate_only))
    return {
        result["resource_name"]: BrokerError(result["error_code"], result["error_message"])
        for result in response.to_object()["responses"]
        if result["error_code"]
    }


async def _add_partitions(
    admin: Any, plans: Sequence[TopicPlan], *, validate_only: bool
) -> dict[str, str]:
    errors = {}
    # One request per topic: aiokafka raises the first error of a request, and one topic's
    # refusal must not hide whether the others succeeded.
    for plan in plans:
        request = {plan.spec.name: NewPartitions(plan.spec.partitions)}
        try:
            await admin.create_partitions(request, validate_only=validate_only)
        except KafkaError as error:
            errors[plan.spec.name] = str(error)
    return errors


async def reconcile(
    admin: Any,
    specs: Sequence[TopicSpec],
    *,
    dry_run: bool,
    settle_seconds: float = 30.0,
    retry_races: bool = True,
) -> Report:
    """Bring the cluster to ``specs`` (or, dry, have the cluster validate doing so)."""
    plans, errors = await plan_topics(admin, specs)
    report = Report(plans, dry_run=dry_run, errors=errors)
    raced = await _apply(admin, report)
    if dry_run:
        return report
    # The cluster acknowledges a change before every broker's metadata shows it. Waiting
    # until it does means that what this run printed is what the next reader (a worker
    # starting after this job, or the next run) sees.
    applied = [
        plan.spec
        for plan in plans
        if not plan.unchanged and plan.spec.name not in report.errors.keys() | raced
    ]
    for plan in await _unsettled(admin, applied, seconds=settle_seconds):
        report.errors.setdefault(plan.spec.name, []).append(
            f"the cluster does not show the change after {settle_seconds:.0f}s"
        )
    if raced:
        # Created by another run at the same moment, or so shortly before this one that the
        # metadata did not show it yet; perhaps with other settings: plan those again once
        # the metadata shows them.
        again = [spec for spec in specs if spec.name in raced]
        if retry_races and not await _unsettled(admin, again, seconds=settle_seconds, exist=True):
            report.replace(
                await reconcile(
                    admin, again, dry_run=False, settle_seconds=settle_seconds, retry_races=False
                )
            )
        else:
            for name in raced:
                report.errors[name] = ["created meanwhile by another client: run again"]
    return report


async def _apply(admin: Any, report: Report) -> set[str]:
    """Carry out (or validate) ``report``'s plans, adding what the cluster refused to it.

    Returns the topics that could not be created because they exist after all.
    """
    dry_run, blocked = report.dry_run, set(report.errors)
    plans = [plan for plan in report.plans if plan.spec.name not in blocked]
    to_create = [plan.spec for plan in plans if plan.missing]
    to_alter = [plan for plan in plans if plan.config_changes]
    to_grow = [plan for plan in plans if plan.adds_partitions]
    raced: set[str] = set()
    if to_create:
        for name, error in (await _create(admin, to_create, validate_only=dry_run)).items():
            if error.code == _TOPIC_EXISTS and not dry_run:
                raced.add(name)
            else:
                report.errors.setdefault(name, []).append(f"creating it: {error}")
    if to_alter:
        for name, error in (await _alter(admin, to_alter, validate_only=dry_run)).items():
            report.errors.setdefault(name, []).append(f"setting its configs: {error}")
    for name, message in (await _add_partitions(admin, to_grow, validate_only=dry_run)).items():
        report.errors.setdefault(name, []).append(f"adding partitions: {message}")
    return raced


async def _unsettled(
    admin: Any, specs: Sequence[TopicSpec], *, seconds: float, exist: bool = False
) -> list[TopicPlan]:
    """The plans of those of ``specs`` that still differ from the cluster after ``seconds``
    (with ``exist``, those that do not exist yet)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while specs:
        plans, _ = await plan_topics(admin, specs)
        pending = [plan for plan in plans if (plan.missing if exist else not plan.unchanged)]
        if not pending or loop.time() >= deadline:
            return pending
        specs = [plan.spec for plan in pending]
        await asyncio.sleep(0.2)
    return []


async def reconcile_topics(settings: ProvisioningSettings, *, dry_run: bool = False) -> Report:
    """Connect to ``KAFKA_BOOTSTRAP_SERVERS`` and reconcile every topic of the product."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers, client_id="device-binding-topics"
    )
    await admin.start()
    try:
        return await reconcile(admin, product_topics(settings), dry_run=dry_run)
    finally:
        await admin.close()


# IncrementalAlterConfigs (KIP-339) v0, which aiokafka 0.14 does not offer: its
# alter_configs is the older AlterConfigs, which replaces every config set on a topic, so a
# config an operator set by hand (or one we do not manage) would be silently reset. Built on
# aiokafka's own protocol classes; the versions are negotiated per connection as for its
# requests (brokers from 2.3 to 4.x serve v0).
class _IncrementalAlterConfigsResponseV0(Response):  # type: ignore[misc]  # aiokafka is untyped
    API_KEY = 44
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "responses",
            Array(
                ("error_code", Int16),
                ("error_message", String("utf-8")),
                ("resource_type", Int8),
                ("resource_name", String("utf-8")),
            ),
        ),
    )


class _IncrementalAlterConfigsRequestV0(RequestStruct):  # type: ignore[misc]
    API_KEY = 44
    API_VERSION = 0
    RESPONSE_TYPE = _IncrementalAlterConfigsResponseV0
    SCHEMA = Schema(
        (
            "resources",
            Array(
                ("resource_type", Int8),
                ("resource_name", String("utf-8")),
                (
                    "configs",
                    Array(
                        ("name", String("utf-8")),
                        ("config_operation", Int8),
                        ("value", String("utf-8")),
                    ),
                ),
            ),
        ),
        ("validate_only", Boolean),
    )


class _IncrementalAlterConfigs(Request[_IncrementalAlterConfigsRequestV0]):  # type: ignore[misc]
    API_KEY = 44

    def __init__(self, resources: list[Any], validate_only: bool) -> None:
        self._resources = resources
        self._validate_only = validate_only

    def build(self, request_struct_class: type[Any]) -> Any:
        return request_struct_class(self._resources, self._validate_only)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m worker.topics",
        description="Create the product's Kafka topics, or bring existing ones to their "
        "configuration. Settings from the environment (KAFKA_BOOTSTRAP_SERVERS, "
        "TOPIC_PARTITIONS, TOPIC_REPLICATION_FACTOR, TOPIC_MIN_INSYNC_REPLICAS, ...).",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan, validated by the cluster, and change nothing",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    try:
        settings = ProvisioningSettings()
    except ValidationError as error:
        print(f"invalid settings: {error}", file=sys.stderr)
        return 2
    try:
        report = asyncio.run(reconcile_topics(settings, dry_run=args.dry_run))
    except KafkaError as error:
        print(f"Kafka at {settings.kafka_bootstrap_servers}: {error!r}", file=sys.stderr)
        return 1
    for line in report.lines():
        print(line, flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
