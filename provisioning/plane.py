"""Provisioning an authorised Kafka plane: the product's topics, then its principals' ACLs.

Run as the ``admin`` principal before any process starts (``python -m provisioning --acls``,
the Kubernetes Job; the harness's SASL_SSL broker): on a broker that refuses whatever no ACL
allows, the processes can neither create their topics nor grant themselves anything.
"""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient

from messaging import KafkaConnection, kafka_options
from provisioning.acl_requests import apply_acls
from provisioning.acls import PlaneNames, acl_plan
from provisioning.plan import Report
from provisioning.reconciler import reconcile
from provisioning.specs import ProvisioningSettings, product_topics


def plane_names(settings: ProvisioningSettings, **groups: str) -> PlaneNames:
    """The ACLs' topic names as ``settings`` gives them; consumer groups the defaults unless
    ``groups`` names them (``worker_group=...``)."""
    return PlaneNames(
        commands=settings.commands_topic,
        events=settings.events_topic,
        otp_deliveries=settings.otp_deliveries_topic,
        dead_letters=settings.dead_letter_topic,
        replies=settings.replies_topic,
        signals=settings.signals_topic,
        audit_checkpoints=settings.audit_checkpoints_topic,
        # api/replies.py's reply_group() of this replies topic.
        api_group=f"{settings.replies_topic}.api",
        **groups,
    )


async def provision_plane(
    settings: ProvisioningSettings,
    names: PlaneNames,
    *,
    acls: bool = True,
    dry_run: bool = False,
    connection: KafkaConnection | None = None,
) -> Report:
    """Reconcile every topic of the product; then, unless the topics failed, a dry run or
    ``acls`` is off, create the ACLs of ``names`` (raises ``AclsRefused`` if refused)."""
    admin = AIOKafkaAdminClient(
        **kafka_options(settings.kafka_bootstrap_servers, connection),
        client_id="device-binding-provisioning",
    )
    await admin.start()
    try:
        report = await reconcile(admin, product_topics(settings), dry_run=dry_run)
        if acls and report.ok and not dry_run:
            await apply_acls(admin, acl_plan(names))
        return report
    finally:
        await admin.close()
