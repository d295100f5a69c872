"""``python -m api``: one API replica on ``API_HOST``:``API_PORT`` (one worker process).

On SIGTERM uvicorn stops accepting connections and lets the requests in flight finish
(each waits at most ``REPLY_WAIT_SECONDS`` for its reply) before the lifespan closes Kafka.
"""

import uvicorn

from api.app import create_app
from api.settings import ServerSettings
from telemetry.logs import configure_logging
from telemetry.tracing import configure_tracing


def main() -> None:
    configure_logging("api")
    configure_tracing("device-binding-api")
    server = ServerSettings()
    uvicorn.run(
        create_app(),
        host=server.api_host,
        port=server.api_port,
        workers=1,
        # The C parser and libuv's loop: less time per request than h11 and asyncio's loop.
        loop="uvloop",
        http="httptools",
        lifespan="on",
        server_header=False,
        log_config=None,  # our JSON lines (configure_logging), not uvicorn's own format
    )


if __name__ == "__main__":
    main()
