"""Signed webhooks end to end: the real app and node, a real database and chain, and a real
HTTP receiver on 127.0.0.1 that verifies every signature."""

from __future__ import annotations

import json
import logging
import secrets
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select

from parcelproof.core import envelope
from parcelproof.service.webhooks import (
    CHECKPOINT_ANCHORED,
    DELIVERY_ID_HEADER,
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    STATUS_CHANGED,
    USER_AGENT,
    RetryPolicy,
)
from parcelproof.store.models import WebhookDeliveryRow, WebhookSubscriptionRow
from tests.api.conftest import Api
from tests.support.webhooks import Receiver, Rig, webhook_receiver, webhook_rig

PARCEL, POSTCODE = "PP555444333NL", "1012 AB"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as r:
        yield r


@pytest.fixture
def rig(api: Api, sql_engine: Engine, receiver: Receiver) -> Iterator[Rig]:
    with webhook_rig(api, sql_engine) as r:
        receiver.now = r.clock.now  # the receiver's clock is the node's (moved by hand)
        yield r


def _subscribe(rig: Rig, receiver: Receiver, types: list[str]) -> dict[str, Any]:
    created = rig.create(receiver.url, types, description="integrator")
    receiver.secret = created["secret"]
    return created


def _shipment(rig: Rig) -> None:
    r = rig.client.post(
        "/v1/shipments",
        headers=rig.api.auth(),
        json={"tracking_number": PARCEL, "postcode": POSTCODE, "details": {"recipient": "N. B."}},
    )
    assert r.status_code == 201, r.text


def _event(rig: Rig, status: str) -> str:
    """Record a driver-signed event through the API; returns its event id."""
    api = rig.api
    c = rig.client.post(
        "/v1/shipments/context", json={"tracking_number": PARCEL}, headers=api.auth()
    ).json()
    ctx = api.node.event_context(PARCEL)
    assert ctx.sequence == c["sequence"]
    openings, signature = api.driver.sign(ctx, {"status": status, "place": "Utrecht"}, api.now)
    event_id = uuid.uuid4().hex
    r = rig.client.post(
        "/v1/events",
        headers=api.auth(),
        json={
            "event_id": event_id,
            "tracking_number": PARCEL,
            "event_time": api.now,
            "agent": api.driver.address,
            "signature": "0x" + signature.hex(),
            "fields": [o.to_json() for o in openings],
        },
    )
    assert r.status_code == 201, r.text
    return event_id


def _deliveries(rig: Rig, webhook_id: str) -> list[dict[str, Any]]:
    r = rig.client.get(f"/v1/webhooks/{webhook_id}/deliveries", headers=rig.api.auth())
    assert r.status_code == 200, r.text
    value: list[dict[str, Any]] = r.json()
    return value


def test_a_recorded_event_reaches_the_receiver_signed(
    rig: Rig, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    created = _subscribe(rig, receiver, [STATUS_CHANGED])
    _shipment(rig)
    with caplog.at_level(logging.DEBUG):
        event_id = _event(rig, "picked_up")
        result = rig.service.dispatch_once()
    assert (result.queued, result.attempted, result.delivered) == (1, 1, 1)
    [got] = receiver.wait_for(1)
    assert got.verified is True, got.reason
    assert got.path == "/hooks/parcelproof"
    assert got.headers["user-agent"] == USER_AGENT
    assert got.headers["content-type"] == "application/json"
    assert got.headers[EVENT_TYPE_HEADER.lower()] == STATUS_CHANGED
    body = got.json()
    assert body["type"] == STATUS_CHANGED and body["id"] == got.headers[EVENT_ID_HEADER.lower()]
    assert body["logId"] == "0x" + rig.api.node.courier_id.hex()
    data = body["data"]
    shipment_id = rig.api.node.shipment_id(PARCEL)
    assert data["eventId"] == event_id and data["shipmentId"] == shipment_id
    assert (data["sequence"], data["status"], data["eventTime"]) == (0, "picked_up", rig.api.now)
    assert data["erased"] is False and "place" not in data  # only the status is revealed
    [delivery] = _deliveries(rig, created["id"])
    assert delivery["id"] == got.headers[DELIVERY_ID_HEADER.lower()]
    assert (delivery["state"], delivery["attempts"], delivery["next_attempt_at"]) == (
        "delivered",
        1,
        None,
    )
    assert delivery["history"][0]["status_code"] == 200
    assert delivery["history"][0]["error"] is None
    # Our logs name ids and outcomes, never the body, the status, the URL or the secret
    # (httpx's own request lines are held at WARNING by parcelproof.logs outside DEBUG).
    ours = [r for r in caplog.records if r.name.startswith("parcelproof")]
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in ours)
    assert "webhook attempt" in text
    for secret_or_personal in ("picked_up", PARCEL, created["secret"], receiver.url, "Utrecht"):
        assert secret_or_personal not in text
    # Nothing new: the next cycle sends nothing.
    assert rig.service.dispatch_once().attempted == 0


def test_anchoring_sends_checkpoint_anchored_and_the_filter_holds(
    rig: Rig, receiver: Receiver
) -> None:
    _subscribe(rig, receiver, [CHECKPOINT_ANCHORED])
    _shipment(rig)
    _event(rig, "picked_up")
    _event(rig, "departed")
    anchored = rig.client.post("/v1/anchor", headers=rig.api.auth())
    assert anchored.status_code == 200, anchored.text
    rig.service.dispatch_once()
    [got] = receiver.wait_for(1)
    assert got.verified is True, got.reason
    body = got.json()
    assert body["type"] == CHECKPOINT_ANCHORED  # and no status_changed: not subscribed
    checkpoint = rig.api.node.store.latest_checkpoint()
    assert checkpoint is not None and checkpoint.tx_hash is not None
    assert body["data"]["size"] == 2 == checkpoint.size
    assert body["data"]["root"] == "0x" + checkpoint.root.hex()
    assert body["data"]["txHash"] == "0x" + checkpoint.tx_hash.hex()
    assert body["data"]["blockNumber"] == checkpoint.block_number


def test_failures_are_retried_with_exponential_back_off_then_delivered(
    rig: Rig, receiver: Receiver
) -> None:
    receiver.fail_first = 2
    created = _subscribe(rig, receiver, [STATUS_CHANGED])
    _shipment(rig)
    _event(rig, "picked_up")
    start = rig.clock.now()
    assert rig.service.dispatch_once().attempted == 1  # 500
    [d] = _deliveries(rig, created["id"])
    assert (d["state"], d["attempts"], d["next_attempt_at"]) == ("retrying", 1, start + 10)
    rig.clock.advance(9)
    assert rig.service.dispatch_once().attempted == 0  # not due yet
    rig.clock.advance(1)
    assert rig.service.dispatch_once().attempted == 1  # 500 again: now 20 s
    [d] = _deliveries(rig, created["id"])
    assert (d["state"], d["next_attempt_at"]) == ("retrying", start + 10 + 20)
    rig.clock.advance(19)
    assert rig.service.dispatch_once().attempted == 0
    rig.clock.advance(1)
    assert rig.service.dispatch_once().delivered == 1
    [d] = _deliveries(rig, created["id"])
    assert (d["state"], d["attempts"], d["next_attempt_at"]) == ("delivered", 3, None)
    assert [a["status_code"] for a in d["history"]] == [500, 500, 200]
    assert [a["at"] for a in d["history"]] == [start, start + 10, start + 30]
    got = receiver.wait_for(3)
    assert all(g.verified for g in got)
    assert len({g.body for g in got}) == 1  # the same body (and event id) on every try
    assert len({g.headers["parcelproof-signature"] for g in got}) == 3  # fresh timestamps


def test_gives_up_after_max_attempts_and_logs_every_attempt(rig: Rig, receiver: Receiver) -> None:
    rig.service.policy = RetryPolicy(base_seconds=5, max_attempts=3, jitter=0.0)
    receiver.fail_first = 1000
    receiver.fail_status = 503
    created = _subscribe(rig, receiver, [STATUS_CHANGED])
    _shipment(rig)
    _event(rig, "picked_up")
    for wait in (0, 5, 10):
        rig.clock.advance(wait)
        assert rig.service.dispatch_once().attempted == 1
    [d] = _deliveries(rig, created["id"])
    assert (d["state"], d["attempts"], d["next_attempt_at"]) == ("failed", 3, None)
    assert [a["attempt"] for a in d["history"]] == [1, 2, 3]
    assert [a["status_code"] for a in d["history"]] == [503, 503, 503]
    rig.clock.advance(10_000)
    assert rig.service.dispatch_once().attempted == 0  # failed is final
    assert len(receiver.wait_for(3)) == 3


def test_a_hanging_receiver_times_out_and_is_retried(rig: Rig, receiver: Receiver) -> None:
    rig.service.policy = RetryPolicy(base_seconds=10, max_attempts=4, jitter=0, timeout_seconds=0.3)
    receiver.hang_seconds = 1.5
    created = rig.create(receiver.url, [STATUS_CHANGED])
    r = rig.client.post(f"/v1/webhooks/{created['id']}/test", headers=rig.api.auth())
    assert r.status_code == 200, r.text
    attempt = r.json()["history"][0]
    assert (r.json()["state"], attempt["status_code"], attempt["error"]) == (
        "retrying",
        None,
        "timeout",
    )
    assert 250 <= attempt["duration_ms"] < 1500


def test_the_test_endpoint_fires_a_signed_sample_now(rig: Rig, receiver: Receiver) -> None:
    created = _subscribe(rig, receiver, [CHECKPOINT_ANCHORED])
    r = rig.client.post(f"/v1/webhooks/{created['id']}/test", headers=rig.api.auth())
    assert r.status_code == 200, r.text
    outcome = r.json()
    assert (outcome["event_type"], outcome["state"], outcome["attempts"]) == (
        "webhook.test",
        "delivered",
        1,
    )
    assert outcome["history"][0]["status_code"] == 200
    [got] = receiver.wait_for(1)
    assert got.verified is True, got.reason
    assert got.json()["data"]["subscriptionId"] == created["id"]
    assert [d["event_type"] for d in _deliveries(rig, created["id"])] == ["webhook.test"]
    # A receiver answering 500: the outcome says so and the delivery waits for its retry.
    receiver.fail_first = 2
    r = rig.client.post(f"/v1/webhooks/{created['id']}/test", headers=rig.api.auth())
    assert (r.json()["state"], r.json()["history"][0]["status_code"]) == ("retrying", 500)


def test_a_deleted_subscription_receives_nothing_more(
    rig: Rig, receiver: Receiver, sql_engine: Engine
) -> None:
    created = _subscribe(rig, receiver, [STATUS_CHANGED, CHECKPOINT_ANCHORED])
    _shipment(rig)
    _event(rig, "picked_up")
    assert rig.service.store.fan_out(rig.clock.now(), 100) == 1  # queued, not sent yet
    r = rig.client.delete(f"/v1/webhooks/{created['id']}", headers=rig.api.auth())
    assert r.status_code == 204, r.text
    _event(rig, "departed")
    rig.client.post("/v1/anchor", headers=rig.api.auth())
    rig.clock.advance(3600)
    assert rig.service.dispatch_once().attempted == 0
    assert receiver.wait_for(1, timeout=0.3) == []
    with sql_engine.connect() as c:
        states = c.execute(select(WebhookDeliveryRow.state)).scalars().all()
    assert states == ["cancelled"]
    gone = rig.client.get(f"/v1/webhooks/{created['id']}/deliveries", headers=rig.api.auth())
    assert gone.status_code == 404
    assert rig.client.get("/v1/webhooks", headers=rig.api.auth()).json() == []
    actions = [e.action for e in rig.api.audit.entries()]
    assert "webhook.create" in actions and "webhook.delete" in actions


def test_the_dispatcher_loop_delivers_on_its_own(rig: Rig, receiver: Receiver) -> None:
    _subscribe(rig, receiver, [STATUS_CHANGED])
    _shipment(rig)
    stop = threading.Event()
    thread = threading.Thread(target=rig.service.run, args=(stop,), kwargs={"tick": 0.05})
    thread.start()
    try:
        _event(rig, "picked_up")
        got = receiver.wait_for(1, timeout=10)
    finally:
        stop.set()
        thread.join(5)
    assert len(got) == 1 and got[0].verified is True
    assert got[0].json()["data"]["status"] == "picked_up"


def test_the_signing_secret_is_sealed_at_rest_and_survives_rotation(
    rig: Rig, receiver: Receiver, sql_engine: Engine
) -> None:
    created = _subscribe(rig, receiver, [STATUS_CHANGED])
    secret: str = created["secret"]
    assert secret.startswith("whsec_") and len(secret) == 6 + 43
    listed = rig.client.get("/v1/webhooks", headers=rig.api.auth()).json()
    assert listed[0]["id"] == created["id"] and "secret" not in listed[0]
    with sql_engine.connect() as c:
        row = c.execute(select(WebhookSubscriptionRow)).one()
    raw = b"".join(v if isinstance(v, bytes) else str(v).encode() for v in row)
    assert secret.encode() not in raw and secret[6:].encode() not in raw
    sealed = json.loads(row.secret_sealed)
    assert sealed["key"]["kid"] == "k1"
    # Rotation: a new active key re-seals the secret; the subscriber's secret is unchanged.
    ring = rig.service.keyring.with_key(envelope.KeyEncryptionKey("k2", secrets.token_bytes(32)))
    rig.service.keyring = ring
    assert rig.service.rewrap_secrets() == 1
    assert rig.service.rewrap_secrets() == 0  # idempotent
    with sql_engine.connect() as c:
        resealed = c.execute(select(WebhookSubscriptionRow.secret_sealed)).scalar_one()
    assert json.loads(resealed)["key"]["kid"] == "k2"
    rig.service.keyring = ring.without("k1")
    r = rig.client.post(f"/v1/webhooks/{created['id']}/test", headers=rig.api.auth())
    assert r.json()["state"] == "delivered", r.text
    assert receiver.wait_for(1)[0].verified is True


def test_a_running_node_delivers_from_next_to_its_anchoring_worker(receiver: Receiver) -> None:
    """As `serve` runs it: open_node wires the webhooks, the worker thread starts the
    dispatcher; an event and its anchoring reach the receiver with nothing else to do."""
    from contextlib import ExitStack

    from fastapi.testclient import TestClient

    from parcelproof.api.app import create_app
    from parcelproof.cli import _dev_chain_node
    from parcelproof.service.agent import Agent
    from parcelproof.settings import load_settings

    with ExitStack() as stack:
        settings = load_settings(read_env_file=False, anchor_interval_seconds=0.2)
        runtime, token = _dev_chain_node(settings, stack)
        assert runtime.webhooks is not None and runtime.services.webhooks is runtime.webhooks
        driver = Agent(secrets.token_bytes(32))
        now = int(runtime.chain.w3.eth.get_block("latest")["timestamp"])
        runtime.ledger.register_agent_key(
            driver.address, now - 86400, now + 86400, sender=runtime.chain.account
        )
        with TestClient(create_app(runtime.services)) as client:
            r = client.post(
                "/v1/webhooks",
                json={"url": receiver.url, "event_types": [STATUS_CHANGED, CHECKPOINT_ANCHORED]},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert r.status_code == 201, r.text
            receiver.secret = r.json()["secret"]
            runtime.node.create_shipment(PARCEL, {"recipient": "N. B."}, POSTCODE)
            runtime.start_worker()
            driver.record(runtime.node, PARCEL, {"status": "picked_up"}, now)
            got = receiver.wait_for(2, timeout=20)
        runtime.stop_worker()
    assert sorted(g.json()["type"] for g in got) == [CHECKPOINT_ANCHORED, STATUS_CHANGED]
    assert all(g.verified for g in got), [g.reason for g in got]
