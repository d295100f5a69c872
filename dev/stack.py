"""``make run``: the whole product on this machine, with local defaults. DEVELOPMENT ONLY.

Starts, in order, and stops in reverse on Ctrl-C or SIGTERM:

1. Apache Kafka on 127.0.0.1:9092 (harness/kafka; none if KAFKA_BOOTSTRAP_SERVERS is set);
2. ``WORKERS`` worker processes (default 2) on SQLite under var/ (or ``DATABASE_URL``),
   after migrating the databases; their probes and metrics on ports 8001, 8002, ...;
3. the development OTP sink, which prints each OTP instead of sending an SMS;
4. the reference audit consumer (trail in var/audit.db; ``python -m audit verify``) and the
   fraud-signal consumer, unless ``CONSUMERS=0``;
5. the API on 127.0.0.1:8000, trusting the development signing key in var/dev/.

Mint a token with ``make token``; play the bank's app with ``make demo``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from harness import devkeys
from harness.kafka import local_kafka
from harness.stack import auth_environment, wait_for_topics, wait_until_ready
from schemas import topics

ROOT = Path(__file__).resolve().parents[1]
VAR = ROOT / "var"


def main() -> int:
    VAR.mkdir(exist_ok=True)
    jwks = devkeys.ensure_keys(VAR / "dev")
    stopping = False

    def request_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    broker = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        broker = local_kafka.LocalKafka(VAR / "kafka", port=9092)
        print("starting Kafka on 127.0.0.1:9092 ...", flush=True)
        broker.start()
        bootstrap = broker.bootstrap_servers
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "DATABASE_URL": os.environ.get(
            "DATABASE_URL", f"sqlite+aiosqlite:///{VAR / 'device-binding.db'}"
        ),
        "AUDIT_DATABASE_URL": os.environ.get(
            "AUDIT_DATABASE_URL", f"sqlite+aiosqlite:///{VAR / 'audit.db'}"
        ),
        **auth_environment(jwks),
        "PYTHONUNBUFFERED": "1",
    }
    python = sys.executable
    children: list[subprocess.Popen[bytes]] = []

    def spawn(*args: str, **extra_env: str) -> None:
        children.append(subprocess.Popen([python, *args], env={**env, **extra_env}, cwd=ROOT))

    def migrate(package: str) -> None:
        # The schema first, once, as the Kubernetes Job does: the processes only check it.
        subprocess.run([python, "-m", package, "migrate"], env=env, cwd=ROOT, check=True)

    consumers = os.environ.get("CONSUMERS", "1") != "0"
    try:
        migrate("worker")
        if consumers:
            migrate("audit")
        for number in range(int(os.environ.get("WORKERS", "2"))):
            # Each worker's probes and metrics on its own port: 8001, 8002, ...
            spawn("-m", "worker", WORKER_HTTP_PORT=str(8001 + number))
        asyncio.run(
            wait_for_topics(
                bootstrap, {topics.COMMANDS, topics.EVENTS, topics.REPLIES, topics.OTP_DELIVERIES}
            )
        )
        spawn("-m", "dev.otp_sink")
        if consumers:
            spawn("-m", "audit")
            spawn("-m", "fraud")
        spawn("-m", "api")
        try:
            asyncio.run(wait_until_ready("http://127.0.0.1:8000/readyz", within=90))
        except TimeoutError:
            print("the API is not ready after 90 s; see the log above", file=sys.stderr)
        print(
            f"\nstack up: Kafka {bootstrap}, API http://127.0.0.1:8000, JWKS {jwks}\n"
            "  token: make token    demo: make demo    stop: Ctrl-C\n",
            flush=True,
        )
        while not stopping:
            for child in children:
                if child.poll() is not None:
                    print(f"{child.args!r} exited with {child.returncode}", file=sys.stderr)
                    return 1
            if broker is not None and (broker.process is None or broker.process.poll() is not None):
                print(f"Kafka exited:\n{broker.log_tail()}", file=sys.stderr)
                return 1
            time.sleep(0.5)
        return 0
    finally:
        for child in reversed(children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in reversed(children):
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
        if broker is not None:
            broker.stop()
        print("stack stopped", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
