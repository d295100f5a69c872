"""``python -m worker``: run one worker process until SIGTERM or Ctrl-C."""

import asyncio
import logging
import signal

from worker.app import Worker
from worker.settings import WorkerSettings


async def _serve() -> None:
    worker = Worker(WorkerSettings())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await worker.start()
    try:
        await stop.wait()
    finally:
        await worker.stop()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(_serve())


if __name__ == "__main__":
    main()
