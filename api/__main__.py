"""``python -m api``: one API replica on ``API_HOST``:``API_PORT`` (one worker process)."""

import logging

import uvicorn

from api.app import create_app
from api.settings import ServerSettings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    server = ServerSettings()
    uvicorn.run(
        create_app(),
        host=server.api_host,
        port=server.api_port,
        workers=1,
        lifespan="on",
        server_header=False,
    )


if __name__ == "__main__":
    main()
