"""``python -m fraud``: run the fraud-signal consumer until SIGTERM or Ctrl-C.

Run one instance only: it reads every partition of the events topic itself.
"""

import asyncio
import signal

from fraud.app import FraudSignals
from fraud.settings import FraudSettings
from telemetry.logs import configure_logging


async def _serve() -> None:
    signals = FraudSignals(FraudSettings())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await signals.start()
    stopping = asyncio.create_task(stop.wait())
    try:
        # Consuming ends by itself only on a failure; stop() then raises it, so the process
        # exits non-zero and its supervisor restarts it.
        await asyncio.wait([stopping, signals.running], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        await signals.stop()


def main() -> None:
    configure_logging("fraud")
    asyncio.run(_serve())


if __name__ == "__main__":
    main()
