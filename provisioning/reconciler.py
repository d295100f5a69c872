"""Reconciling a cluster's topics with their specs: plan what differs, apply it, report it.

A missing topic is created; an existing one gets its spec's configs set on it (one by one,
leaving any other config of the topic alone) and more partitions when it has fewer than
wanted. Nothing is ever deleted or decreased, and a replication factor is never changed
(that is a partition reassignment, an operator's decision): both are reported instead. A dry
run asks the cluster to validate the same plan and changes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiokafka.admin import NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from provisioning.config_requests import SET, IncrementalAlterConfigs
from provisioning.plan import BrokerError, ConfigChange, Report, TopicPlan, TopicSpec

# Kafka protocol error codes and config sources this module reads.
TOPIC_ALREADY_EXISTS = 36  # CreateTopics error code
_DYNAMIC_TOPIC_CONFIG = 1  # DescribeConfigs config_source: set on the topic itself


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


async def create_topics(
    admin: Any, specs: Sequence[TopicSpec], *, validate_only: bool
) -> dict[str, BrokerError]:
    """Create ``specs`` (or have the cluster validate doing so); what it refused, by topic."""
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
            [(change.name, SET, change.wanted) for change in plan.config_changes],
        )
        for plan in plans
    ]
    # Sent the way aiokafka sends its own admin requests (a private method: pyproject pins
    # aiokafka below 0.15, and tests/provisioning/test_topic_provisioning.py exercises it).
    # Any broker takes it and forwards it to the controller.
    response = await admin._send_request(IncrementalAlterConfigs(resources, validate_only))
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
        for name, error in (await create_topics(admin, to_create, validate_only=dry_run)).items():
            if error.code == TOPIC_ALREADY_EXISTS and not dry_run:
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
