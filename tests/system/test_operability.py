"""What operators rely on, against real Kafka: probes that follow Kafka's state, metrics that
move with the work, traces that cross Kafka, and a SIGTERM that loses and repeats nothing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY

from harness.kafka.local_kafka import LocalKafka
from harness.stack import worker_environment
from schemas.commands import COMMAND_ADAPTER, VerifySignature, command_key
from tests.conftest import REPO_ROOT
from tests.support.http import Tokens, api_client, api_settings
from tests.support.worker import (
    running_worker,
    start_reader,
    worker_settings,
)
from worker.lag import LagMonitor
from worker.settings import WorkerSettings

pytestmark = pytest.mark.kafka

SIGNATURE = "3045022100" + "ab" * 32 + "0220" + "cd" * 32


async def until(condition: Callable[[], Awaitable[bool]], *, within: float) -> float:
    """Seconds until ``condition`` held; fails after ``within`` seconds."""
    started = time.monotonic()
    async with asyncio.timeout(within):
        while not await condition():
            await asyncio.sleep(0.25)
    return time.monotonic() - started


async def status(http: httpx.AsyncClient, url: str) -> int:
    try:
        return (await http.get(url, timeout=10)).status_code
    except httpx.TransportError:
        return 0


def verify_command(settings: WorkerSettings, *, reply_to: str = "test-client") -> VerifySignature:
    return VerifySignature(
        command_id=uuid.uuid4(),
        request_id=f"req-{uuid.uuid4().hex[:8]}",
        client_id="bank-1",
        reply_to=reply_to,
        issued_at=datetime.now(UTC),
        challenge_id=uuid.uuid4(),
        signature=SIGNATURE,
    )


async def publish_commands(settings: WorkerSettings, commands: list[VerifySignature]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        for command in commands:
            await producer.send(
                settings.commands_topic,
                COMMAND_ADAPTER.dump_json(command),
                key=command_key(command),
            )
        await producer.flush()
    finally:
        await producer.stop()


@pytest.mark.slow
async def test_readiness_follows_kafka_down_and_back(
    own_broker: LocalKafka, tmp_path: Path
) -> None:
    worker = worker_settings(
        own_broker.bootstrap_servers, tmp_path / "store.db", worker_http_port=0, auto_migrate=True
    )
    tokens = Tokens(tmp_path / "keys")
    api = api_settings(
        worker,
        tokens,
        reply_wait_seconds=3.0,
        publish_timeout_seconds=3.0,
        kafka_connect_timeout_seconds=2.0,
    )
    async with (
        running_worker(worker) as running,
        api_client(api) as client,
        httpx.AsyncClient() as http,
    ):
        probes = f"http://127.0.0.1:{running.probes.port}"
        unknown = f"/v1/mfa/challenges/signatures/{uuid.uuid4()}"
        body = {"signature": SIGNATURE}

        async def both(expected: int) -> bool:
            api_ready = (await client.get("/readyz")).status_code == expected
            return api_ready and await status(http, f"{probes}/readyz") == expected

        assert await both(200)
        assert (await client.put(unknown, json=body, headers=tokens.headers())).status_code == 404

        await asyncio.to_thread(own_broker.stop)
        outage = await until(lambda: both(503), within=60)
        # Liveness is not readiness: the processes live, nothing restarts them for this.
        assert (await client.get("/healthz")).status_code == 200
        assert await status(http, f"{probes}/healthz") == 200
        started = time.monotonic()
        during = await client.put(unknown, json=body, headers=tokens.headers())
        assert during.status_code == 503
        assert time.monotonic() - started < 3.0 + 3.0 + 2.0  # publish + reply wait, at most

        await asyncio.to_thread(own_broker.restart)
        recovery = await until(lambda: both(200), within=60)
        after = await client.put(unknown, json=body, headers=tokens.headers())
    assert after.status_code == 404, after.text  # a worker answered: the round trip is back
    print(f"not ready {outage:.1f}s after Kafka stopped, ready {recovery:.1f}s after it was back")


async def test_metrics_and_lag_follow_the_work(kafka_bootstrap: str, tmp_path: Path) -> None:
    settings = worker_settings(
        kafka_bootstrap, tmp_path / "store.db", worker_http_port=0, auto_migrate=True
    )
    commands = [verify_command(settings) for _ in range(5)]

    def refused() -> float:
        return (
            REGISTRY.get_sample_value(
                "device_binding_verification_outcomes_total",
                {"outcome": "rejected", "reason": "not_found"},
            )
            or 0.0
        )

    before = refused()
    async with running_worker(settings):
        pass  # creates the topics, joins the group, commits nothing
    await publish_commands(settings, commands)
    monitor = LagMonitor(
        bootstrap_servers=kafka_bootstrap,
        topic=settings.commands_topic,
        group=settings.consumer_group,
        interval=1,
    )
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    offsets = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    await offsets.start()
    try:
        assert await monitor.measure(admin, offsets) == 5
        async with running_worker(settings) as running, httpx.AsyncClient() as http:
            metrics_url = f"http://127.0.0.1:{running.probes.port}/metrics"

            async def drained() -> bool:
                return await monitor.measure(admin, offsets) == 0

            await until(drained, within=30)
            text = (await http.get(metrics_url)).text
    finally:
        await offsets.stop()
        await admin.close()
    assert refused() == before + 5
    assert 'device_binding_commands_total{result="handled",type="verify_signature"}' in text
    assert "device_binding_command_to_event_seconds_bucket" in text
    assert "device_binding_consumer_lag" in text


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    """Spans of this module's tests, in memory (the global provider can be set only once)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return exporter


async def test_a_trace_crosses_kafka_from_request_to_event(
    kafka_bootstrap: str, tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    worker = worker_settings(kafka_bootstrap, tmp_path / "store.db", auto_migrate=True)
    tokens = Tokens(tmp_path / "keys")
    caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    async with running_worker(worker), api_client(api_settings(worker, tokens)) as client:
        events = await start_reader(kafka_bootstrap, worker.events_topic)
        try:
            response = await client.put(
                f"/v1/mfa/challenges/signatures/{uuid.uuid4()}",
                json={"signature": SIGNATURE},
                headers={
                    **tokens.headers(),
                    "traceparent": f"00-{caller_trace}-00f067aa0ba902b7-01",
                },
            )
            [event] = await events.wait_for(lambda record: record["value"] is not None)
        finally:
            await events.consumer.stop()
    assert response.status_code == 404

    finished = {span.name: span for span in spans.get_finished_spans()}
    server, sent, handled = (
        finished["HTTP PUT"],
        finished["send verify_signature"],
        finished["handle verify_signature"],
    )
    # One trace, the caller's, from the HTTP request through the worker.
    assert {format(s.context.trace_id, "032x") for s in (server, sent, handled)} == {caller_trace}
    assert handled.parent is not None
    assert handled.parent.span_id == sent.context.span_id
    # And on to the event's consumers, in its headers.
    traceparent = event["headers"]["traceparent"].decode()
    assert traceparent.split("-")[1] == caller_trace


async def test_sigterm_finishes_in_flight_commands_and_repeats_none(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    # One command a batch, and three thousand: in batches (500 by default) the worker gets
    # through hundreds of commands in the moment between the test seeing it started on
    # the rest and the SIGTERM landing, and could finish before it does; and a test
    # process slowed by a busy machine sees the replies late, so the rest is long.
    settings = worker_settings(
        kafka_bootstrap, tmp_path / "store.db", topic_partitions=3, batch_max_records=1
    )
    env = {**os.environ, **worker_environment(settings)}
    commands = [verify_command(settings) for _ in range(3000)]
    wanted = {str(command.command_id) for command in commands}
    log = tmp_path / "worker.log"

    def start_worker() -> subprocess.Popen[bytes]:
        with log.open("ab") as output:
            return subprocess.Popen(
                [sys.executable, "-m", "worker"],
                env=env,
                cwd=REPO_ROOT,
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    first = start_worker()
    replies = await start_reader(kafka_bootstrap, settings.replies_topic)
    events = await start_reader(kafka_bootstrap, settings.events_topic)
    try:
        await until(lambda: _topic_exists(kafka_bootstrap, settings.commands_topic), within=60)
        # A first hundred, then the rest: the SIGTERM goes as soon as the worker is into the
        # rest, so that it lands mid-stream however fast the worker is.
        await publish_commands(settings, commands[:100])
        await replies.wait_for(lambda record: True, count=100)
        await publish_commands(settings, commands[100:])
        await replies.wait_for(lambda record: True, count=101)
        first.send_signal(signal.SIGTERM)  # mid-stream: hundreds still to do
        code = await asyncio.to_thread(first.wait, 60)
        assert code == 0, log.read_text()[-3000:]
        await replies.poll()
        done_by_first = {r["value"]["command_id"] for r in replies.records}
        assert len(done_by_first) < len(commands), "the worker stopped mid-stream"

        second = start_worker()
        try:
            await replies.wait_for(
                lambda r: r["value"]["command_id"] in wanted, count=len(commands)
            )
            await events.wait_for(lambda r: True, count=len(commands))
            await asyncio.sleep(2)  # a repeat would show now
            for _ in range(20):
                await replies.poll()
                await events.poll()
        finally:
            second.send_signal(signal.SIGTERM)
            await asyncio.to_thread(second.wait, 60)
    finally:
        await replies.consumer.stop()
        await events.consumer.stop()
        if first.poll() is None:
            first.kill()

    answered = [r["value"]["command_id"] for r in replies.records]
    assert set(answered) == wanted  # none lost
    # None repeated: what the first worker finished before stopping was committed, so the
    # second began exactly where it stopped.
    assert len(answered) == len(commands)
    event_ids = [e["value"]["id"] for e in events.records]
    assert len(event_ids) == len(set(event_ids)) == len(commands)
    # Every log line is one JSON object.
    lines = log.read_text().splitlines()
    assert all(json.loads(line)["service"] == "worker" for line in lines)


async def _topic_exists(bootstrap: str, topic: str) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return topic in await admin.list_topics()
    finally:
        await admin.close()
