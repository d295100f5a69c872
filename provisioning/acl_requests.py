"""Applying :mod:`provisioning.acls` to a cluster: CreateAcls v1, every rule in one request,
then DescribeAcls v1 until the broker enforces them all.

aiokafka ships the requests' schemas but sends one ACL per request; this sends the whole plan
at once, through the admin client's own connection (so with its TLS and SASL settings).
Creating an ACL that exists already is a no-op on the broker, so applying is idempotent.

The controller acknowledges ACLs before a broker's authorizer has loaded them from the
metadata log: a client starting at once would be refused what it was just granted (measured:
an idempotent producer's first request, moments after the CreateAcls response). Hence the
wait until the broker itself describes every rule.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiokafka.protocol.admin import CreateAclsRequest_v1, DescribeAclsRequest_v1
from aiokafka.protocol.api import Request

from provisioning.acls import AclRule, Operation, ResourceType

_ANY = 1  # the "any" value of the resource type, pattern type, operation and permission
_LITERAL = 3  # resource pattern type
_ALLOW = 3  # permission type
_ANY_HOST = "*"
_PRINCIPAL_PREFIX = "User:"


class AclsRefused(Exception):
    """The cluster refused some of the ACLs (the messages are the broker's)."""


class _CreateAcls(Request[CreateAclsRequest_v1]):  # type: ignore[misc]  # aiokafka is untyped
    API_KEY = 30

    def __init__(self, rules: Sequence[AclRule]) -> None:
        self._rules = rules

    def build(self, request_struct_class: type[Any]) -> Any:
        return request_struct_class(
            [
                (
                    int(rule.resource_type),
                    rule.resource_name,
                    _LITERAL,
                    rule.kafka_principal,
                    _ANY_HOST,
                    int(rule.operation),
                    _ALLOW,
                )
                for rule in rules_sorted(self._rules)
            ]
        )


class _DescribeAllAcls(Request[DescribeAclsRequest_v1]):  # type: ignore[misc]
    API_KEY = 29

    def build(self, request_struct_class: type[Any]) -> Any:
        return request_struct_class(_ANY, None, _ANY, None, None, _ANY, _ANY)


def rules_sorted(rules: Sequence[AclRule]) -> list[AclRule]:
    return sorted(set(rules))


async def describe_acls(admin: Any) -> set[AclRule]:
    """The LITERAL, ALLOW-any-host ACLs on the resource types :mod:`provisioning.acls` uses,
    as the broker ``admin`` reaches enforces them (other ACLs are left out)."""
    response = (await admin._send_request(_DescribeAllAcls())).to_object()
    if response["error_code"]:
        raise AclsRefused(f"describing ACLs: {response['error_message'] or response['error_code']}")
    found = set()
    kinds = {kind.value for kind in ResourceType}
    operations = {operation.value for operation in Operation}
    for resource in response["resources"]:
        if resource["resource_type"] not in kinds or resource["resource_pattern_type"] != _LITERAL:
            continue
        for acl in resource["acls"]:
            if (
                acl["permission_type"] == _ALLOW
                and acl["host"] == _ANY_HOST
                and acl["operation"] in operations
                and acl["principal"].startswith(_PRINCIPAL_PREFIX)
            ):
                found.add(
                    AclRule(
                        acl["principal"].removeprefix(_PRINCIPAL_PREFIX),
                        ResourceType(resource["resource_type"]),
                        resource["resource_name"],
                        Operation(acl["operation"]),
                    )
                )
    return found


async def apply_acls(admin: Any, rules: Sequence[AclRule], *, within: float = 30.0) -> None:
    """Create ``rules`` on the cluster ``admin`` (a started AIOKafkaAdminClient, connected as
    a principal allowed to ALTER the cluster) is connected to; raise :class:`AclsRefused`
    naming every rule the cluster refused."""
    if not rules:
        return
    ordered = rules_sorted(rules)
    # Sent the way aiokafka sends its own admin requests (as provisioning/reconciler.py does).
    response = await admin._send_request(_CreateAcls(ordered))
    results = response.to_object()["creation_responses"]
    refused = [
        f"{rule.kafka_principal} {rule.operation.name} {rule.resource_type.name} "
        f"{rule.resource_name}: {result['error_message'] or result['error_code']}"
        for rule, result in zip(ordered, results, strict=True)
        if result["error_code"]
    ]
    if refused:
        raise AclsRefused("; ".join(refused))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while missing := set(ordered) - await describe_acls(admin):
        if loop.time() > deadline:
            raise AclsRefused(f"{len(missing)} ACLs still not enforced after {within:.0f}s")
        await asyncio.sleep(0.1)
