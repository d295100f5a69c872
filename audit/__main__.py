"""``python -m audit [run]`` consumes the events into the trail until SIGTERM or Ctrl-C;
``python -m audit verify`` checks the whole chain and exits 1 naming its first broken link;
``python -m audit migrate`` upgrades the audit database to the head revision (``--revision``
for another, ``--downgrade REV`` to go back), printing the revision before and after."""

import argparse
import asyncio
import signal
import sys

from audit.consumer import AuditConsumer
from audit.database import AUDIT_MIGRATIONS
from audit.settings import AuditSettings
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


async def _verify(settings: AuditSettings) -> int:
    engine = create_engine(settings.audit_database_url)
    try:
        report = await verify_chain(engine)
    finally:
        await engine.dispose()
    print(report.describe(), flush=True)
    return 0 if report.intact else 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m audit", description=__doc__)
    commands = parser.add_subparsers(dest="command", metavar="{run,verify,migrate}")
    commands.add_parser("run", help="consume the events into the trail (the default)")
    commands.add_parser("verify", help="check the whole chain")
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
        return asyncio.run(_verify(settings))
    if arguments.command == "migrate":
        return asyncio.run(
            migrate_command(
                settings.audit_database_url,
                AUDIT_MIGRATIONS,
                revision=arguments.revision,
                downgrade_to=arguments.downgrade,
            )
        )
    try:
        return asyncio.run(_run(settings))
    except SchemaNotCurrent as error:
        # What to do, not a traceback: this is the operator's to fix.
        print(f"audit consumer not started: {error}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
