"""``python -m worker [run]`` runs one worker process until SIGTERM or Ctrl-C;
``python -m worker migrate`` upgrades its database to the head revision (``--revision`` for
another, ``--downgrade REV`` to go back), printing the revision before and after;
``python -m worker new-otp-key [KID]`` prints a fresh ``kid:base64key`` for
``OTP_ENCRYPTION_KEYS``."""

import argparse
import asyncio
import signal
import sys

import uvloop

from storage.migrations import SchemaNotCurrent, migrate_command
from telemetry.logs import configure_logging
from telemetry.tracing import configure_tracing
from worker.app import Worker
from worker.errors import OtpKeysInvalid
from worker.migrations import WORKER_MIGRATIONS
from worker.otp_keyring import new_key_text
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
    commands = parser.add_subparsers(dest="command", metavar="{run,migrate,new-otp-key}")
    commands.add_parser("run", help="consume commands (the default)")
    migrate = commands.add_parser("migrate", help="migrate the database (DATABASE_URL)")
    target = migrate.add_mutually_exclusive_group()
    target.add_argument("--revision", default="head", help="upgrade to this revision (head)")
    target.add_argument("--downgrade", metavar="REV", help="downgrade to this revision (base)")
    new_key = commands.add_parser("new-otp-key", help="print a key for OTP_ENCRYPTION_KEYS")
    new_key.add_argument("kid", nargs="?", default="k1", help="the key's id (k1)")
    return parser


def main() -> int:
    arguments = _parser().parse_args()
    if arguments.command == "new-otp-key":
        print(new_key_text(arguments.kid))
        return 0
    configure_logging("worker")
    configure_tracing("device-binding-worker")
    if arguments.command == "migrate":
        settings = WorkerSettings()
        try:
            return asyncio.run(
                migrate_command(
                    settings.database_url,
                    WORKER_MIGRATIONS,
                    revision=arguments.revision,
                    downgrade_to=arguments.downgrade,
                )
            )
        except OtpKeysInvalid as error:  # 0005 seals pending digests: it needs the keys
            print(f"not migrated: {error}", file=sys.stderr, flush=True)
            return 1
    try:
        # uvloop: the worker is one event loop moving Kafka messages; libuv's loop costs
        # less per callback than asyncio's own.
        uvloop.run(_serve())
    except (SchemaNotCurrent, OtpKeysInvalid) as error:
        # What to do, not a traceback: this is the operator's to fix.
        print(f"worker not started: {error}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
