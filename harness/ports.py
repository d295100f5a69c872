"""Free ports on 127.0.0.1, for processes started side by side with others (``make run``)."""

import socket


def free_port() -> int:
    """A port nothing listens on now; the caller binds it soon after."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
