"""The principals' ACLs as data (SPEC §9): what each role is granted, checked as properties of
the plan, and the README's table rendered from it."""

from __future__ import annotations

import re
from pathlib import Path

from provisioning.acls import (
    API,
    AUDIT,
    DEMO,
    FRAUD,
    LAG_READER,
    ROLES,
    SMS_GATEWAY,
    WORKER,
    AclRule,
    Operation,
    PlaneNames,
    ResourceType,
    acl_plan,
    markdown_table,
    rules_of,
)

README = Path(__file__).resolve().parents[2] / "README.md"
NAMES = PlaneNames()
TOPIC, GROUP = ResourceType.TOPIC, ResourceType.GROUP
READ, WRITE = Operation.READ, Operation.WRITE


def _granted(principal: str, operation: Operation, kind: ResourceType = TOPIC) -> set[str]:
    return {
        rule.resource_name
        for rule in rules_of(principal, acl_plan())
        if rule.operation == operation and rule.resource_type == kind
    }


def test_only_the_worker_writes_events_replies_otps_and_dead_letters() -> None:
    worker_topics = {NAMES.events, NAMES.replies, NAMES.otp_deliveries, NAMES.dead_letters}
    assert _granted(WORKER, WRITE) == worker_topics
    for principal in set(ROLES) - {WORKER}:
        assert not _granted(principal, WRITE) & worker_topics, principal


def test_each_role_reads_and_writes_what_spec_9_says() -> None:
    assert (_granted(API, WRITE), _granted(API, READ)) == ({NAMES.commands}, {NAMES.replies})
    assert _granted(WORKER, READ) == {NAMES.commands}
    assert (_granted(AUDIT, READ), _granted(AUDIT, WRITE)) == (
        {NAMES.events, NAMES.audit_checkpoints},
        {NAMES.audit_checkpoints},
    )
    assert (_granted(FRAUD, READ), _granted(FRAUD, WRITE)) == ({NAMES.events}, {NAMES.signals})
    assert (_granted(DEMO, READ), _granted(DEMO, WRITE)) == ({NAMES.events}, set())
    # The autoscaler measures the workers' lag and reads no record.
    assert {(r.resource_name, r.operation) for r in rules_of(LAG_READER, acl_plan())} == {
        (NAMES.commands, Operation.DESCRIBE),
        (NAMES.worker_group, Operation.DESCRIBE),
    }


def test_the_sms_gateway_reads_otp_deliveries_and_nothing_else() -> None:
    rules = rules_of(SMS_GATEWAY, acl_plan())
    assert {(r.resource_type, r.resource_name) for r in rules} == {
        (TOPIC, NAMES.otp_deliveries),
        (GROUP, NAMES.sms_gateway_group),
    }
    assert WRITE not in {rule.operation for rule in rules}


def test_only_the_sms_gateway_reads_otps_and_only_the_worker_writes_them() -> None:
    on_otps = [r for r in acl_plan() if r.resource_name == NAMES.otp_deliveries]
    assert {r.principal for r in on_otps if r.operation == READ} == {SMS_GATEWAY}
    assert {r.principal for r in on_otps if r.operation == WRITE} == {WORKER}
    assert {r.principal for r in on_otps} == {WORKER, SMS_GATEWAY}


def test_each_consumer_group_is_joined_by_one_principal() -> None:
    owners: dict[str, set[str]] = {}
    for rule in acl_plan():
        if rule.resource_type == GROUP and rule.operation == READ:
            owners.setdefault(rule.resource_name, set()).add(rule.principal)
    assert all(len(principals) == 1 for principals in owners.values()), owners
    assert set(owners) == {
        NAMES.api_group,
        NAMES.worker_group,
        NAMES.audit_group,
        NAMES.fraud_group,
        NAMES.sms_gateway_group,
    }


def test_no_rule_names_a_wildcard_or_the_cluster() -> None:
    # Literal names only: a "*" or a prefix would grant topics that do not exist yet; cluster
    # operations are the super users' (topics are created by the provisioner).
    for rule in acl_plan():
        assert rule.resource_type in (TOPIC, GROUP), rule
        assert "*" not in rule.resource_name, rule


def test_the_plan_follows_the_names_it_is_given() -> None:
    names = PlaneNames(commands="t.commands", worker_group="t.workers")
    rules = acl_plan(names)
    assert AclRule(API, TOPIC, "t.commands", WRITE) in rules
    assert AclRule(WORKER, GROUP, "t.workers", READ) in rules
    assert not [r for r in rules if r.resource_name in (NAMES.commands, NAMES.worker_group)]


def test_the_table_has_a_row_per_principal_and_resource() -> None:
    table = markdown_table(acl_plan())
    lines = table.splitlines()
    assert lines[:2] == ["| Principal | Resource | Name | Operations |", "|---|---|---|---|"]
    assert f"| `api` | topic | `{NAMES.commands}` | WRITE, DESCRIBE |" in lines
    assert f"| `sms-gateway` | topic | `{NAMES.otp_deliveries}` | READ, DESCRIBE |" in lines
    assert f"| `sms-gateway` | group | `{NAMES.sms_gateway_group}` | READ |" in lines
    assert any(line.startswith("| `demo` (local `make demo` only) |") for line in lines)
    assert lines[2].startswith("| `admin` | cluster | (super user)")
    # Every rule is in the table, and the table says nothing the plan does not.
    grants = {
        (principal, kind, name, operation)
        for line in lines[4:]
        for principal, kind, name, operations in [re.findall(r"\| ([^|]+) ", line + " ")]
        for operation in operations.split(", ")
    }
    expected = {
        (
            f"`{r.principal}`" + (" (local `make demo` only)" if r.principal == DEMO else ""),
            r.resource_type.name.lower(),
            f"`{r.resource_name}`",
            r.operation.name,
        )
        for r in acl_plan()
    }
    assert grants == expected


def test_the_readme_acl_table_is_the_plans() -> None:
    text = README.read_text()
    block = re.search(r"<!-- acl-table -->\n(.*?)<!-- /acl-table -->", text, re.DOTALL)
    assert block is not None, "README's Security section lost its <!-- acl-table --> block"
    assert block.group(1) == markdown_table(acl_plan())
