"""``python -m worker [run]`` runs one worker process until SIGTERM or Ctrl-C;
``python -m worker migrate`` upgrades its database to the head revision (``--revision`` for
another, ``--downgrade REV`` to go back), printing the revision before and after."""

import argparse
import asyncio
import signal
import sys

import uvloop

from storage.migrations import SchemaNotCurrent, migrate_command
from telemetry.logs import configure_logging
from telemetry.tracing import configure_tracing
from worker.app import Worker
from worker.migrations import WORKER_MIGRATIONS
from worker.settings import WorkerSettings


async def _serve() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with Worker(WorkerSettings()):
        await stop.wait()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m worker", description=__doc__)
    commands = parser.add_subparsers(dest="command", metavar="{run,migrate}")
    commands.add_parser("run", help="consume commands (the default)")
    migrate = commands.add_parser("migrate", help="migrate the database (DATABASE_URL)")
    target = migrate.add_mutually_exclusive_group()
    target.add_argument("--revision", default="head", help="upgrade to this revision (head)")
    target.add_argument("--downgrade", metavar="REV", help="downgrade to this revision (base)")
    return parser


def main() -> int:
    arguments = _parser().parse_args()
    configure_logging("worker")
    configure_tracing("device-binding-worker")
    if arguments.command == "migrate":
        settings = WorkerSettings()
        return asyncio.run(
            migrate_command(
                settings.database_url,
                WORKER_MIGRATIONS,
                revision=arguments.revision,
                downgrade_to=arguments.downgrade,
            )
        )
    try:
        # uvloop: the worker is one event loop moving Kafka messages; libuv's loop costs
        # less per callback than asyncio's own.
        uvloop.run(_serve())
    except SchemaNotCurrent as error:
        # What to do, not a traceback: this is the operator's to fix.
        print(f"worker not started: {error}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
