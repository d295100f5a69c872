"""``python -m audit [run]`` consumes the events into the trail until SIGTERM or Ctrl-C;
``python -m audit verify`` checks the whole chain and exits 1 naming its first broken link;
``python -m audit verify --checkpoints`` also checks it against every checkpoint published
on the checkpoints topic and exits 1 naming the first that no longer matches (and any
forged one); ``python -m audit keygen PATH`` creates a checkpoint signing key (mode 0600)
and its public key ``PATH.pub``;
``python -m audit migrate`` upgrades the audit database to the head revision (``--revision``
for another, ``--downgrade REV`` to go back), printing the revision before and after, then,
with ``AUDIT_RUNTIME_ROLE`` set (PostgreSQL), grants that role exactly the consumer's rights
(audit/roles.py)."""

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from audit.anchoring import verify_against_checkpoints
from audit.checkpoint_log import CheckpointTopicMissing, read_checkpoints
from audit.consumer import AuditConsumer
from audit.database import AUDIT_MIGRATIONS
from audit.roles import RoleSetupError, grant_runtime_role
from audit.settings import AuditSettings
from audit.signing import CheckpointVerifier, KeyFileError, ensure_key_file
from audit.verification import verify_chain
from storage.engine import create_engine
from storage.migrations import SchemaNotCurrent, migrate_command
from telemetry.logs import configure_logging


async def _run(settings: AuditSettings) -> int:
    consumer = AuditConsumer(settings)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, consumer.request_stop)
    try:
        await consumer.start()
    except BaseException:
        # Release the database's connections: SQLite's run on threads that would keep the
        # process from exiting.
        await consumer.stop()
        raise
    try:
        await consumer.run()
    finally:
        await consumer.stop()
    return 0


async def _verify(settings: AuditSettings, *, checkpoints: bool) -> int:
    verifier = _verifier(settings) if checkpoints else None
    engine = create_engine(settings.audit_database_url)
    try:
        report = await verify_chain(engine)
        print(report.describe(), flush=True)
        if verifier is None:
            return 0 if report.intact else 1
        published = await read_checkpoints(
            settings.kafka_bootstrap_servers,
            settings.audit_checkpoints_topic,
            settings.audit_chain_name,
        )
        anchors = await verify_against_checkpoints(
            engine, published, verifier, chain_name=settings.audit_chain_name
        )
    finally:
        await engine.dispose()
    print("\n".join(anchors.lines()), flush=True)
    return 0 if report.intact and anchors.intact else 1


def _verifier(settings: AuditSettings) -> CheckpointVerifier:
    key_file = settings.audit_verify_key_file or settings.audit_signing_key_file
    if key_file is None:
        raise KeyFileError(
            "set AUDIT_VERIFY_KEY_FILE (the public key) to verify checkpoints, "
            "or AUDIT_SIGNING_KEY_FILE"
        )
    return CheckpointVerifier.from_file(key_file)


def _grant(database_url: str, role: str) -> int:
    try:
        statements = asyncio.run(grant_runtime_role(database_url, role))
    except RoleSetupError as error:
        print(f"audit migrate: {error}", file=sys.stderr, flush=True)
        return 1
    print(f"runtime role {role}: {len(statements)} statements of audit/roles.py", flush=True)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m audit", description=__doc__)
    commands = parser.add_subparsers(dest="command", metavar="{run,verify,migrate,keygen}")
    commands.add_parser("run", help="consume the events into the trail (the default)")
    verify = commands.add_parser("verify", help="check the whole chain")
    verify.add_argument(
        "--checkpoints",
        action="store_true",
        help="also check it against every published checkpoint (AUDIT_VERIFY_KEY_FILE)",
    )
    keygen = commands.add_parser("keygen", help="create a checkpoint signing key if absent")
    keygen.add_argument("path", type=Path, help="the private key file to create (mode 0600)")
    migrate = commands.add_parser("migrate", help="migrate the database (AUDIT_DATABASE_URL)")
    target = migrate.add_mutually_exclusive_group()
    target.add_argument("--revision", default="head", help="upgrade to this revision (head)")
    target.add_argument("--downgrade", metavar="REV", help="downgrade to this revision (base)")
    return parser


def main() -> int:
    arguments = _parser().parse_args()
    configure_logging("audit")
    settings = AuditSettings()
    if arguments.command == "verify":
        try:
            return asyncio.run(_verify(settings, checkpoints=arguments.checkpoints))
        except (KeyFileError, CheckpointTopicMissing) as error:
            print(f"audit verify: {error}", file=sys.stderr, flush=True)
            return 2
    if arguments.command == "keygen":
        print(ensure_key_file(arguments.path), flush=True)
        return 0
    if arguments.command == "migrate":
        code = asyncio.run(
            migrate_command(
                settings.audit_database_url,
                AUDIT_MIGRATIONS,
                revision=arguments.revision,
                downgrade_to=arguments.downgrade,
            )
        )
        if code == 0 and settings.audit_runtime_role and arguments.downgrade is None:
            return _grant(settings.audit_database_url, settings.audit_runtime_role)
        return code
    try:
        return asyncio.run(_run(settings))
    except SchemaNotCurrent as error:
        # What to do, not a traceback: this is the operator's to fix.
        print(f"audit consumer not started: {error}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
