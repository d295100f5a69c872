"""``python -m provisioning [--dry-run] [--acls]``: create the product's Kafka topics on a
cluster, or bring existing ones to their configuration (:mod:`provisioning.specs`); with
``--acls``, then create the ACLs of every principal (:mod:`provisioning.acls`), connected as
a principal allowed to (``admin``, through the ``KAFKA_*`` variables)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from messaging import kafka_options
from provisioning.acl_requests import AclsRefused
from provisioning.acls import ROLES, acl_plan
from provisioning.plan import Report
from provisioning.plane import plane_names, provision_plane
from provisioning.reconciler import reconcile
from provisioning.specs import ProvisioningSettings, product_topics


async def reconcile_topics(settings: ProvisioningSettings, *, dry_run: bool = False) -> Report:
    """Connect to ``KAFKA_BOOTSTRAP_SERVERS`` and reconcile every topic of the product."""
    admin = AIOKafkaAdminClient(
        **kafka_options(settings.kafka_bootstrap_servers), client_id="device-binding-topics"
    )
    await admin.start()
    try:
        return await reconcile(admin, product_topics(settings), dry_run=dry_run)
    finally:
        await admin.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m provisioning",
        description="Create the product's Kafka topics, or bring existing ones to their "
        "configuration. Settings from the environment (KAFKA_BOOTSTRAP_SERVERS, "
        "TOPIC_PARTITIONS, TOPIC_REPLICATION_FACTOR, TOPIC_MIN_INSYNC_REPLICAS, ...).",
    )
    parser.add_argument(
        "--acls",
        action="store_true",
        help="also create the ACLs of the product's principals (SPEC §9) once the topics exist",
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
    names = plane_names(settings)
    try:
        if args.acls:
            report = asyncio.run(provision_plane(settings, names, dry_run=args.dry_run))
        else:
            report = asyncio.run(reconcile_topics(settings, dry_run=args.dry_run))
    except AclsRefused as error:
        print(f"ACLs refused: {error}", file=sys.stderr)
        return 1
    except KafkaError as error:
        print(f"Kafka at {settings.kafka_bootstrap_servers}: {error!r}", file=sys.stderr)
        return 1
    for line in report.lines():
        print(line, flush=True)
    if args.acls and report.ok and not args.dry_run:
        print(f"ACLs of {', '.join(ROLES)} applied ({len(acl_plan(names))} rules)", flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
