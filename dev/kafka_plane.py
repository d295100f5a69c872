"""``make run``'s Kafka security mode: ``KAFKA_SECURITY=sasl_ssl`` (plaintext by default).

In that mode the local broker listens with TLS and SCRAM-SHA-512 only; ``admin`` creates the
product's topics and applies every principal's ACLs before anything starts, and each process
gets the ``KAFKA_*`` variables of its own role (the worker's, the API's, the audit's, the fraud
consumer's; the development OTP sink runs as the SMS gateway). ``make demo`` reads events as
the ``demo`` principal, whose password it finds in the broker's folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Final

from dev.otp_sink import group_id as otp_sink_group
from harness.kafka.broker_config import Security
from harness.kafka.credentials import BrokerCredentials
from harness.kafka.secure_plane import SecurePlane, provision
from messaging import KafkaConnection
from provisioning.acls import DEMO, PlaneNames
from provisioning.plane import plane_names
from provisioning.specs import ProvisioningSettings

SECURITY_VARIABLE: Final = "KAFKA_SECURITY"
# The connection variables a process would otherwise inherit from whoever ran `make run`;
# in the secure mode each process gets its role's instead.
CONNECTION_PREFIXES: Final = ("KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_", "KAFKA_SSL_")
# Where `make run`'s broker (var/kafka) keeps its users' passwords, in sasl_ssl mode only.
LOCAL_BROKER_CREDENTIALS: Final = (
    Path(__file__).resolve().parents[1] / "var" / "kafka" / "credentials.json"
)
# As many partitions as the worker makes for itself in plaintext mode (WorkerSettings).
PARTITIONS: Final = 6


def requested_security(environ: Mapping[str, str]) -> Security:
    """``KAFKA_SECURITY``: ``plaintext`` (unset or empty) or ``sasl_ssl``."""
    value = environ.get(SECURITY_VARIABLE, "").strip().lower() or "plaintext"
    if value == "plaintext":
        return "plaintext"
    if value == "sasl_ssl":
        return "sasl_ssl"
    raise ValueError(f"{SECURITY_VARIABLE} is plaintext or sasl_ssl, not {value!r}")


def development_settings(bootstrap: str) -> ProvisioningSettings:
    """The product's topics under their production names, on one local broker."""
    return ProvisioningSettings(
        kafka_bootstrap_servers=bootstrap,
        topic_partitions=PARTITIONS,
        topic_replication_factor=1,
        topic_min_insync_replicas=1,
    )


def development_names(settings: ProvisioningSettings) -> PlaneNames:
    """Production's names, but the SMS gateway's group is the development OTP sink's."""
    return plane_names(settings, sms_gateway_group=otp_sink_group(settings.otp_deliveries_topic))


async def provision_development_plane(
    credentials: BrokerCredentials, bootstrap: str
) -> SecurePlane:
    settings = development_settings(bootstrap)
    return await provision(credentials, settings, development_names(settings))


def role_environment(
    base: Mapping[str, str], plane: SecurePlane | None, role: str
) -> dict[str, str]:
    """``base`` as it is in plaintext mode; else without any inherited connection variable,
    with ``role``'s."""
    if plane is None:
        return dict(base)
    kept = {name: value for name, value in base.items() if not name.startswith(CONNECTION_PREFIXES)}
    return {**kept, **plane.environment(role)}


def demo_connection(environ: Mapping[str, str], credentials_file: Path) -> KafkaConnection | None:
    """How ``make demo`` reaches the broker: the environment's settings when it names a
    broker or a protocol (another broker than ``make run``'s); else the ``demo`` principal's
    when ``make run`` started a SASL_SSL broker (its credentials file exists: a plaintext
    start removes it); else None, plaintext."""
    if environ.get("KAFKA_SECURITY_PROTOCOL") or environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        return None
    if not credentials_file.exists():
        return None
    return BrokerCredentials.load(credentials_file).connection(DEMO)
