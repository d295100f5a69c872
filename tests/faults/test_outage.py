"""Reliability under a Kafka outage (SPEC §3, §5, §6, §8): the broker stopped and restarted in
the middle of a load that binds devices and then signs logins with them. Every request
answers within its limit (503 while Kafka is away), the stack recovers by itself, and every
step a 503 parked reaches its true outcome when retried with the same request: nothing
accepted is lost, nothing counted twice, for binding and device signatures alike.

The test runs its own broker, because stopping it must not touch the other tests.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.kafka.local_kafka import LocalKafka
from tests.faults.collector import collecting, probe_status, until
from tests.faults.kinds import BINDING, DEVICE, Kind
from tests.faults.outage_load import LAST, Load
from tests.support.http import Tokens, api_client, api_settings
from tests.support.worker import running_worker, worker_settings

pytestmark = [pytest.mark.faults, pytest.mark.kafka]

PUBLISH_TIMEOUT = 3.0
REPLY_WAIT = 3.0
# What a loaded two-core machine may add to the product's own bound (publish + reply wait).
MARGIN = 4.0
WAIT_LIMIT = PUBLISH_TIMEOUT + REPLY_WAIT + MARGIN
OUTAGE_SECONDS = 10.0
RECOVERY_LIMIT = 30.0
SLOTS = 5  # flows in flight at once
FLOWS_BEFORE_OUTAGE = 8
FLOWS_AFTER_RECOVERY = 4


@pytest.mark.slow
async def test_kafka_outage_under_load_answers_503_recovers_and_loses_nothing(
    own_broker: LocalKafka, database_url: str, tmp_path: Path
) -> None:
    settings = worker_settings(
        own_broker.bootstrap_servers,
        tmp_path / "store.db",
        database_url=database_url,
        worker_http_port=0,
    )
    tokens = Tokens(tmp_path / "keys")
    api = api_settings(
        settings,
        tokens,
        reply_wait_seconds=REPLY_WAIT,
        publish_timeout_seconds=PUBLISH_TIMEOUT,
        kafka_connect_timeout_seconds=2.0,
    )
    async with (
        running_worker(settings) as worker,
        api_client(api) as client,
        httpx.AsyncClient() as http,
        collecting(
            own_broker.bootstrap_servers, settings.events_topic, settings.otp_deliveries_topic
        ) as seen,
    ):
        worker_ready = f"http://127.0.0.1:{worker.probes.port}/readyz"
        load = Load(client, tokens.headers(), seen, settings.otp_deliveries_topic)
        slots = [asyncio.create_task(load.slot(), name=f"slot-{n}") for n in range(SLOTS)]
        try:
            await seen.wait(
                lambda: load.completed() >= FLOWS_BEFORE_OUTAGE,
                within=120,
                what=f"{FLOWS_BEFORE_OUTAGE} flows before the outage",
            )

            stop_called = time.monotonic()
            await asyncio.to_thread(own_broker.stop)
            stopped = time.monotonic()
            await asyncio.sleep(OUTAGE_SECONDS)  # the outage itself, under the load
            restart_called = time.monotonic()
            await asyncio.to_thread(own_broker.restart)
            restarted = time.monotonic()

            ready: dict[str, float] = {}

            async def api_ready() -> bool:
                if (await client.get("/readyz")).status_code == 200:
                    ready.setdefault("api", time.monotonic() - restarted)
                    return True
                return False

            async def worker_is_ready() -> bool:
                if await probe_status(http, worker_ready) == 200:
                    ready.setdefault("worker", time.monotonic() - restarted)
                    return True
                return False

            def first_204_after_restart() -> float | None:
                ends = [
                    e.ended for e in load.exchanges if e.status == 204 and e.started >= restarted
                ]
                return min(ends) - restarted if ends else None

            # Measured up to twice the limit so a slow recovery shows its duration.
            try:
                await asyncio.gather(
                    until(api_ready, within=2 * RECOVERY_LIMIT, what="API ready again"),
                    until(worker_is_ready, within=2 * RECOVERY_LIMIT, what="worker ready again"),
                    seen.wait(
                        lambda: first_204_after_restart() is not None,
                        within=2 * RECOVERY_LIMIT,
                        what="a 204 after Kafka returned",
                    ),
                )
            except AssertionError as failure:
                # What the API answered since Kafka came back, and what the probes say now.
                since = Counter(
                    (e.status, e.code) for e in load.exchanges if e.started >= restarted
                )
                probes = (
                    (await client.get("/readyz")).status_code,
                    await probe_status(http, worker_ready),
                )
                raise AssertionError(
                    f"{failure}; answers since Kafka returned: {dict(since)};"
                    f" readyz now (api, worker): {probes}; ready after: {ready}"
                ) from None
            end_to_end = first_204_after_restart()
            assert end_to_end is not None
            await seen.wait(
                lambda: load.completed(started_after=restarted) >= FLOWS_AFTER_RECOVERY,
                within=120,
                what=f"{FLOWS_AFTER_RECOVERY} flows after recovery",
            )
        finally:
            load.stopping = True
            await asyncio.gather(*slots)

        # The same requests again, as a client retries its 503s; Kafka is back.
        parked = [flow for flow in load.flows if flow.parked is not None]
        for _ in range(5):
            waiting = [flow for flow in load.flows if flow.parked is not None]
            if not waiting:
                break
            await asyncio.gather(*(load.advance(flow) for flow in waiting))
            await asyncio.sleep(1)  # Retry-After, should a retry still meet a 503

        # What the worker stored, as the API reads it.
        states: dict[str, str] = {}
        for flow in load.flows:
            for kind, challenge_id in ((BINDING, flow.challenge_id), (DEVICE, flow.signing_id)):
                if challenge_id is not None:
                    path = f"{kind.path}/{challenge_id}"
                    view = await client.get(path, headers=tokens.headers())
                    assert view.status_code == 200, view.text
                    states[challenge_id] = view.json()["status"]
        await seen.drain()

    exchanges = load.exchanges
    during = [e for e in exchanges if e.started >= stopped and e.ended <= restart_called]
    outage_503s = [e for e in exchanges if e.status == 503 and e.started >= stop_called]
    pending = [e for e in exchanges if e.code == "verification_pending"]
    # Lost: a request Kafka accepted (503 verification_pending) whose step never reached
    # its terminal outcome, even when retried.
    lost = [e for e in pending if e.step not in load.flows[e.flow].answers]
    print(
        f"\noutage: requests={len(exchanges)} flows={len(load.flows)}"
        f" outage_seconds={restarted - stop_called:.1f}"
        f" (stop {stopped - stop_called:.1f}s + down {OUTAGE_SECONDS:.0f}s"
        f" + restart {restarted - restart_called:.1f}s)"
        f" 503s_during_outage={len([e for e in during if e.status == 503])}/{len(during)}"
        f" 503s_total={len([e for e in exchanges if e.status == 503])}"
        f" (verification_pending={len(pending)})"
        f" max_503_latency={max((e.seconds for e in outage_503s), default=0.0):.2f}s"
        f" max_latency={max(e.seconds for e in exchanges):.2f}s"
        f" recovery_seconds: api_ready={ready['api']:.1f} worker_ready={ready['worker']:.1f}"
        f" first_204={end_to_end:.1f}"
        f" parked_and_retried={len(parked)} lost={len(lost)}"
    )

    # Every answer within its wait limit: never a hang, whatever Kafka's state.
    slowest = max(exchanges, key=lambda e: e.seconds)
    assert slowest.seconds <= WAIT_LIMIT, slowest
    for exchange in exchanges:
        if exchange.status == 503:
            assert exchange.code in {"service_unavailable", "verification_pending"}, exchange
            assert exchange.retry_after is not None, exchange
    # During the outage (Kafka's process gone for the whole request): 503, and nothing else.
    assert during, "no request ran during the outage"
    assert all(e.status == 503 for e in during), [e for e in during if e.status != 503]
    # Recovery, by themselves.
    assert ready["api"] <= RECOVERY_LIMIT, ready
    assert ready["worker"] <= RECOVERY_LIMIT, ready
    assert end_to_end <= RECOVERY_LIMIT, end_to_end

    # Nothing accepted is lost: every flow reached its true terminal outcome after retrying
    # its 503s with the same request.
    assert not [(f.number, f.unexpected) for f in load.flows if f.unexpected]
    assert not [(f.number, f.step, f.parked) for f in load.flows if not f.done]
    assert not lost

    events = [e.value for e in seen.of(settings.events_topic) if e.value]
    otps = seen.of(settings.otp_deliveries_topic)
    for flow in load.flows:
        assert flow.challenge_id is not None
        assert flow.signing_id is not None
        cid = flow.challenge_id
        # Registered (202): exactly one OTP.
        assert len([o for o in otps if o.value and o.value["challenge_id"] == cid]) == 1, cid
        _verified_once(events, BINDING, cid, flow.bodies["sign"], wrong_first=flow.wrong_first)
        _verified_once(
            events,
            DEVICE,
            flow.signing_id,
            flow.bodies["device_sign"],
            wrong_first=flow.device_wrong_first,
        )
        assert states[cid] == states[flow.signing_id] == "verified"
    # No 204 but for a flow's own correct signatures, whose verification events exist (above).
    assert all(e.step in ("sign", LAST) for e in exchanges if e.status == 204)


def _verified_once(
    events: list[Any], kind: Kind, challenge_id: str, signed: bytes, *, wrong_first: bool
) -> None:
    """The challenge's creation announced once (the same event again at most, with its id,
    if a retry republished it), verified exactly once by the signature that got the 204,
    and a wrong signature before it counted once."""
    mine = [e for e in events if e["subject"] == challenge_id]
    assert len({e["id"] for e in mine if e["type"] == kind.created}) == 1, challenge_id
    verified = {e["id"]: e for e in mine if e["type"] == kind.verified}
    assert len(verified) == 1, (challenge_id, mine)
    [event] = verified.values()
    assert event["data"]["signature"] == json.loads(signed)["signature"]
    rejected = {e["id"] for e in mine if e["type"] == kind.rejected}
    assert len(rejected) == (1 if wrong_first else 0), (challenge_id, mine)
