"""Who may do what on the broker (SPEC §9): one principal per role, least privilege, as data.

The broker runs with ``allow.everyone.if.no.acl.found=false``, so anything not granted here is
refused. Each role gets exactly what its process does and nothing more:

- api: writes commands, reads its replies (the replicas' reply group);
- worker: reads commands (its group, whose offsets its lag watcher also describes); writes
  events, replies, OTP deliveries and dead letters;
- audit: reads events (its group); writes audit checkpoints, and reads them back
  (``python -m audit verify --checkpoints`` runs with its settings);
- fraud: reads events (its group); writes its signals;
- sms-gateway: reads OTP deliveries (its group) and nothing else;
- lag-reader (the autoscaler, KEDA in deploy/k8s): describes the commands topic and the
  workers' group, to measure their lag; reads no record;
- demo (local ``make demo`` only): reads events, without a group.

The ``admin`` principal (provisioning: topics and these ACLs) is a super user of the broker,
as is the broker itself; no ACL names them. Every rule is LITERAL: a prefix would grant topics
that do not exist yet.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum

from schemas import topics


class ResourceType(IntEnum):
    """Kafka's resource type codes (the wire values of CreateAcls)."""

    TOPIC = 2
    GROUP = 3
    CLUSTER = 4


class Operation(IntEnum):
    """Kafka's ACL operation codes."""

    READ = 3
    WRITE = 4
    CREATE = 5
    DESCRIBE = 8


ADMIN = "admin"
API, WORKER, AUDIT, FRAUD, SMS_GATEWAY, LAG_READER, DEMO = (
    "api",
    "worker",
    "audit",
    "fraud",
    "sms-gateway",
    "lag-reader",
    "demo",
)
# The roles a process runs as, in the order the README's table lists them.
ROLES = (API, WORKER, AUDIT, FRAUD, SMS_GATEWAY, LAG_READER, DEMO)
# Every SCRAM user a broker needs: the roles and the provisioner.
PRINCIPALS = (ADMIN, *ROLES)


@dataclass(frozen=True)
class PlaneNames:
    """The topics and consumer groups the rules name (production's by default; tests and
    ``make run`` pass their own)."""

    commands: str = topics.COMMANDS
    events: str = topics.EVENTS
    otp_deliveries: str = topics.OTP_DELIVERIES
    dead_letters: str = topics.COMMANDS_DLQ
    replies: str = topics.REPLIES
    signals: str = topics.SUSPICIOUS_ACTIVITY
    audit_checkpoints: str = topics.AUDIT_CHECKPOINTS
    worker_group: str = "device-binding-workers"
    # api/replies.py's reply_group(): the replies topic's name plus ".api".
    api_group: str = f"{topics.REPLIES}.api"
    audit_group: str = "device-binding-audit"
    fraud_group: str = "device-binding-fraud-signals"
    sms_gateway_group: str = "sms-gateway"


@dataclass(frozen=True, order=True)
class AclRule:
    """ALLOW ``principal`` to do ``operation`` on one resource, from any host."""

    principal: str
    resource_type: ResourceType
    resource_name: str
    operation: Operation

    @property
    def kafka_principal(self) -> str:
        return f"User:{self.principal}"


def _grant(principal: str, kind: ResourceType, name: str, *operations: Operation) -> list[AclRule]:
    return [AclRule(principal, kind, name, operation) for operation in operations]


TOPIC, GROUP = ResourceType.TOPIC, ResourceType.GROUP
READ, WRITE, DESCRIBE = Operation.READ, Operation.WRITE, Operation.DESCRIBE


def acl_plan(names: PlaneNames | None = None) -> list[AclRule]:
    """Every ACL of the product's principals (SPEC §9), for ``names``."""
    n = names or PlaneNames()
    return [
        *_grant(API, TOPIC, n.commands, WRITE, DESCRIBE),
        *_grant(API, TOPIC, n.replies, READ, DESCRIBE),
        *_grant(API, GROUP, n.api_group, READ),
        *_grant(WORKER, TOPIC, n.commands, READ, DESCRIBE),
        # READ to consume in the group; DESCRIBE for the lag watcher's committed offsets.
        *_grant(WORKER, GROUP, n.worker_group, READ, DESCRIBE),
        *(
            rule
            for topic in (n.events, n.replies, n.otp_deliveries, n.dead_letters)
            for rule in _grant(WORKER, TOPIC, topic, WRITE, DESCRIBE)
        ),
        *_grant(AUDIT, TOPIC, n.events, READ, DESCRIBE),
        *_grant(AUDIT, GROUP, n.audit_group, READ),
        *_grant(AUDIT, TOPIC, n.audit_checkpoints, WRITE, READ, DESCRIBE),
        *_grant(FRAUD, TOPIC, n.events, READ, DESCRIBE),
        *_grant(FRAUD, GROUP, n.fraud_group, READ),
        *_grant(FRAUD, TOPIC, n.signals, WRITE, DESCRIBE),
        *_grant(SMS_GATEWAY, TOPIC, n.otp_deliveries, READ, DESCRIBE),
        *_grant(SMS_GATEWAY, GROUP, n.sms_gateway_group, READ),
        *_grant(LAG_READER, TOPIC, n.commands, DESCRIBE),
        *_grant(LAG_READER, GROUP, n.worker_group, DESCRIBE),
        *_grant(DEMO, TOPIC, n.events, READ, DESCRIBE),
    ]


def rules_of(principal: str, rules: Iterable[AclRule]) -> list[AclRule]:
    return [rule for rule in rules if rule.principal == principal]


def markdown_table(rules: Sequence[AclRule]) -> str:
    """The README's ACL table: one row per principal and resource, its operations joined;
    the super users first."""
    lines = [
        "| Principal | Resource | Name | Operations |",
        "|---|---|---|---|",
        "| `admin` | cluster | (super user) | all: creates topics, applies these ACLs |",
        "| `broker` | cluster | (super user) | the broker itself, on its loopback listeners |",
    ]
    rows: dict[tuple[str, ResourceType, str], list[str]] = {}
    for rule in rules:
        key = (rule.principal, rule.resource_type, rule.resource_name)
        rows.setdefault(key, []).append(rule.operation.name)
    for (principal, kind, name), operations in rows.items():
        who = f"`{principal}`" + (" (local `make demo` only)" if principal == DEMO else "")
        lines.append(f"| {who} | {kind.name.lower()} | `{name}` | {', '.join(operations)} |")
    return "\n".join(lines) + "\n"
