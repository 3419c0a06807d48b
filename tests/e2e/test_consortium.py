"""A consortium as real processes: two couriers' `serve` nodes on one anvil ledger, each with
its own PostgreSQL database, keys and chain account. A parcel is handed from A to B (offer on
A, accept on B, each side's signature in both logs) and the customer, asking A alone, gets one
bundle for the whole journey that verifies against the chain with `parcelproof verify`."""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from parcelproof.chain.devnet import Anvil
from parcelproof.core import eip712
from parcelproof.core.bundle import hex32, verify_bundle
from parcelproof.core.commitment import JsonValue
from parcelproof.service.agent import Agent
from parcelproof.service.node import EventContext
from parcelproof.store.db import make_engine
from tests.e2e.test_serve import FAST_ANCHORING, DevNode, _run, _until, dev_setup, serving

pytestmark = [pytest.mark.anvil, pytest.mark.slow]
PARCEL, POSTCODE = "PP4400556677NL", "6511 AA"


@pytest.fixture
def two_databases(pg_url: str) -> Iterator[tuple[str, str]]:
    """Two throw-away PostgreSQL databases on the local server (dropped afterwards)."""
    names = [f"pp_courier_{secrets.token_hex(4)}" for _ in range(2)]
    admin = make_engine(pg_url).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        for name in names:
            c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        base = make_url(pg_url)
        urls = [base.set(database=n).render_as_string(hide_password=False) for n in names]
        yield urls[0], urls[1]
    finally:
        with admin.connect() as c:
            for name in names:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _auth(node: DevNode) -> dict[str, str]:
    return {"Authorization": f"Bearer {node.values['PARCELPROOF_API_TOKEN']}"}


def _context(node: DevNode, client: httpx.Client) -> EventContext:
    r = client.post("/v1/shipments/context", json={"tracking_number": PARCEL}, headers=_auth(node))
    assert r.status_code == 200, r.text
    c = r.json()
    return EventContext(
        domain=eip712.Domain(chain_id=c["chain_id"], verifying_contract=c["verifying_contract"]),
        log_id=bytes.fromhex(c["log_id"][2:]),
        shipment=bytes.fromhex(c["shipment"][2:]),
        sequence=c["sequence"],
        previous=bytes.fromhex(c["previous"][2:]),
    )


def _event(node: DevNode, client: httpx.Client, fields: dict[str, JsonValue], at: int) -> Any:
    agent = Agent(bytes.fromhex(node.values["PARCELPROOF_AGENT_KEY"][2:]))
    openings, signature = agent.sign(_context(node, client), fields, at)
    r = client.post(
        "/v1/events",
        headers=_auth(node),
        json={
            "event_id": uuid.uuid4().hex,
            "tracking_number": PARCEL,
            "event_time": at,
            "agent": agent.address,
            "signature": "0x" + signature.hex(),
            "fields": [o.to_json() for o in openings],
        },
    )
    assert r.status_code == 201, r.text
    return r.json()


def test_a_parcel_handed_between_two_nodes_verifies_as_one_journey(
    anvil_node: Anvil, tmp_path: Path, two_databases: tuple[str, str]
) -> None:
    url_a, url_b = two_databases
    a = dev_setup(tmp_path / "a", anvil_node, "--database-url", url_a)
    b = dev_setup(tmp_path / "b", anvil_node, "--database-url", url_b, "--join", str(a.env_file))
    assert b.values["PARCELPROOF_LEDGER_ADDRESS"] == a.values["PARCELPROOF_LEDGER_ADDRESS"]
    assert b.values["PARCELPROOF_ACCOUNT_KEY"] != a.values["PARCELPROOF_ACCOUNT_KEY"]
    assert "PARCELPROOF_ADMIN_KEY" not in b.values  # the admin key stays with the first node
    shown = _run(["consortium", "show"], a.env(), a.dir)
    assert shown.returncode == 0 and "2 courier(s)" in shown.stdout

    with (
        serving(b, **FAST_ANCHORING) as (_, client_b),
        serving(a, **FAST_ANCHORING, PARCELPROOF_PEERS=str(client_b.base_url).rstrip("/")) as (
            _,
            client_a,
        ),
    ):
        codes = {}
        for node, client in ((a, client_a), (b, client_b)):
            r = client.post(
                "/v1/shipments",
                headers=_auth(node),
                json={"tracking_number": PARCEL, "postcode": POSTCODE, "details": {"to": "Noor"}},
            )
            assert r.status_code == 201, r.text
            codes[node.dir.name] = r.json()["confirmation_code"]

        now = int(time.time())  # the agent keys are valid from dev-setup on
        _event(a, client_a, {"status": "picked_up", "place": "Amsterdam"}, now)
        ctx_a, ctx_b = _context(a, client_a), _context(b, client_b)
        handoff = eip712.Handoff(
            secrets.token_bytes(32),
            ctx_a.log_id,
            ctx_a.shipment,
            ctx_b.log_id,
            ctx_b.shipment,
            now + 1,
        )
        agent_a = Agent(bytes.fromhex(a.values["PARCELPROOF_AGENT_KEY"][2:]))
        agent_b = Agent(bytes.fromhex(b.values["PARCELPROOF_AGENT_KEY"][2:]))
        common: dict[str, JsonValue] = {
            "handoff_id": hex32(handoff.handoff_id),
            "handoff_time": now + 1,
            "place": "Utrecht",
        }
        offer = _event(
            a,
            client_a,
            {
                "status": "handoff_offered",
                "handoff_to": hex32(ctx_b.log_id),
                "counterparty_shipment": hex32(ctx_b.shipment),
                "counterparty_agent": agent_b.address,
                "counterparty_signature": "0x" + agent_b.sign_handoff(ctx_b.domain, handoff).hex(),
                **common,
            },
            now + 1,
        )
        _event(
            b,
            client_b,
            {
                "status": "handoff_accepted",
                "handoff_of": offer["commitment"],
                "handoff_from": hex32(ctx_a.log_id),
                "counterparty_shipment": hex32(ctx_a.shipment),
                "counterparty_agent": agent_a.address,
                "counterparty_signature": "0x" + agent_a.sign_handoff(ctx_a.domain, handoff).hex(),
                **common,
            },
            now + 2,
        )
        _event(b, client_b, {"status": "out_for_delivery"}, now + 3)
        _event(b, client_b, {"status": "delivered", "confirmation_code": codes["b"]}, now + 4)

        def journey() -> dict[str, Any] | None:
            r = client_a.post("/v1/lookup", json={"tracking_number": PARCEL, "postcode": POSTCODE})
            body: dict[str, Any] = r.json()
            done = (
                r.status_code == 200
                and body["bundle"] is not None
                and len(body["bundle"]["logs"]) == 2
                and all(t["anchoring"] != "pending" for t in body["timeline"])
                and len(body["timeline"]) == 5
            )
            return body if done else None

        body = _until("both logs anchored and merged at A", journey)

    statuses = [t["fields"]["status"] for t in body["timeline"]]
    assert statuses == [
        "picked_up",
        "handoff_offered",
        "handoff_accepted",
        "out_for_delivery",
        "delivered",
    ]
    assert body["verification"]["ok"] is True
    ledger = b.ledger()
    report = verify_bundle(body["bundle"], ledger)
    assert report.ok
    countersigned = [c for c in report.checks if c.name == "handoff-countersignature"]
    assert len(countersigned) == 2 and all(c.ok for c in countersigned)  # each side, each log

    bundle_file = tmp_path / "journey.json"
    bundle_file.write_text(json.dumps(body["bundle"]))
    verified = _run(["verify", str(bundle_file), "--rpc", anvil_node.url], a.env(), tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
