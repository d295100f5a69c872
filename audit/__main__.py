"""``python -m audit [run]`` consumes the events into the trail until SIGTERM or Ctrl-C;
``python -m audit verify`` checks the whole chain and exits 1 naming its first broken link."""

import argparse
import asyncio
import logging
import signal

from audit.consumer import AuditConsumer
from audit.settings import AuditSettings
from audit.verification import verify_chain
from worker.database import create_engine


async def _run(settings: AuditSettings) -> int:
    consumer = AuditConsumer(settings)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, consumer.request_stop)
    await consumer.start()
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


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m audit", description=__doc__)
    parser.add_argument("command", nargs="?", choices=["run", "verify"], default="run")
    command = parser.parse_args().command
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = AuditSettings()
    return asyncio.run(_verify(settings) if command == "verify" else _run(settings))


if __name__ == "__main__":
    raise SystemExit(main())
