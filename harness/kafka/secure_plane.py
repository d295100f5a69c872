"""The product's plane on a SASL_SSL broker, as the tests and ``make run`` set it up.

The ``admin`` principal creates the topics and applies the ACLs of :mod:`provisioning.acls`
before any process starts (as the Kubernetes Job does); each process then gets the
``KAFKA_*`` variables of its own role only, and runs with topic provisioning off: on this
broker nobody but ``admin`` may create a topic.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.kafka.credentials import BrokerCredentials
from messaging import KafkaConnection
from provisioning.acls import ADMIN, PlaneNames
from provisioning.plane import plane_names, provision_plane
from provisioning.specs import ProvisioningSettings

# What a process must not do on this broker: create its own topics (PROVISION_TOPICS is the
# worker's and the fraud consumer's switch).
NO_TOPIC_PROVISIONING = {"PROVISION_TOPICS": "false"}


class PlaneRefused(RuntimeError):
    """The broker refused part of the plane (a topic or an ACL)."""


@dataclass(frozen=True)
class SecurePlane:
    """A provisioned plane: the broker's address, its users' credentials, the names."""

    bootstrap: str
    credentials: BrokerCredentials
    names: PlaneNames

    def connection(self, principal: str = ADMIN) -> KafkaConnection:
        return self.credentials.connection(principal)

    def environment(self, principal: str) -> dict[str, str]:
        """The broker's address and ``principal``'s ``KAFKA_*`` variables, nothing else."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            **self.credentials.environment(principal),
            **NO_TOPIC_PROVISIONING,
        }


def prefixed_settings(bootstrap: str, prefix: str, *, partitions: int = 3) -> ProvisioningSettings:
    """Every topic of the product under ``prefix`` (a test's own), one replica each."""
    return ProvisioningSettings(
        kafka_bootstrap_servers=bootstrap,
        commands_topic=f"{prefix}.commands",
        events_topic=f"{prefix}.events",
        otp_deliveries_topic=f"{prefix}.otp",
        dead_letter_topic=f"{prefix}.commands.dlq",
        replies_topic=f"{prefix}.replies",
        signals_topic=f"{prefix}.signals",
        audit_checkpoints_topic=f"{prefix}.audit-checkpoints",
        topic_partitions=partitions,
        topic_replication_factor=1,
        topic_min_insync_replicas=1,
    )


def prefixed_names(settings: ProvisioningSettings, prefix: str) -> PlaneNames:
    """The ACLs' names for :func:`prefixed_settings`, every consumer group under ``prefix``
    too (the worker's is :class:`harness.stack.StackTopics`'s ``group``)."""
    return plane_names(
        settings,
        worker_group=f"{prefix}.workers",
        audit_group=f"{prefix}.audit",
        fraud_group=f"{prefix}.fraud",
        sms_gateway_group=f"{prefix}.sms-gateway",
    )


async def provision(
    credentials: BrokerCredentials, settings: ProvisioningSettings, names: PlaneNames
) -> SecurePlane:
    """As ``admin``: create the topics of ``settings``, then the ACLs of ``names``."""
    report = await provision_plane(
        settings, names, connection=credentials.connection(ADMIN), acls=True
    )
    if not report.ok:
        raise PlaneRefused("; ".join(report.lines()))
    return SecurePlane(settings.kafka_bootstrap_servers, credentials, names)
