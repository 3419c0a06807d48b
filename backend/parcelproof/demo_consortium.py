"""`parcelproof demo --consortium`: two couriers' nodes, each with its own database, keys, chain
account and HTTP API, on one ledger; a parcel crosses from one to the other and the customer,
asking the first node alone, gets one bundle for the whole journey that verifies on chain."""

from __future__ import annotations

import secrets
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from rich.console import Console

from parcelproof.api.app import create_app
from parcelproof.api.deps import NodeServices
from parcelproof.chain import devnet
from parcelproof.chain.ledger import LedgerClient
from parcelproof.core import eip712, envelope
from parcelproof.core.bundle import hex32, verify_bundle
from parcelproof.core.commitment import JsonValue
from parcelproof.demo import DemoResult, Outcome
from parcelproof.service import credentials
from parcelproof.service.agent import Agent
from parcelproof.service.federation import PeerLookup
from parcelproof.service.keys import AgentKeyDirectory
from parcelproof.service.node import CourierNode, EventContext
from parcelproof.store.db import make_engine, session_factory, sqlite_url, upgrade
from parcelproof.store.sql import SqlStore

PARCEL, POSTCODE = "PP2026112900NL", "2511 CV"
DAY = 86400


@dataclass
class _Courier:
    name: str
    node: CourierNode
    store: SqlStore
    agent: Agent
    token: str
    url: str = ""
    client: httpx.Client | None = None

    def http(self) -> httpx.Client:
        if self.client is None:
            raise RuntimeError("node not serving")
        return self.client

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@contextmanager
def _serving(services: NodeServices) -> Iterator[str]:
    """Serve the node's API on a free loopback port in a thread; yield its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(
        uvicorn.Config(create_app(services), log_config=None, access_log=False, lifespan="off")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def run_consortium_demo(console: Console | None = None, rpc_url: str | None = None) -> DemoResult:
    """Run the two-node story; the outcomes say whether every expectation held."""
    console = console or Console()
    result = DemoResult()

    def expect(what: str, ok: bool, detail: str = "") -> None:
        result.outcomes.append(Outcome(what, "holds", ok, detail))
        mark = "[green]✔[/]" if ok else "[bold red]✘[/]"
        console.print(f"  {mark} {what}" + (f" — {detail}" if detail else ""))

    w3 = devnet.connect(rpc_url)
    console.print(
        f"[bold]ParcelProof consortium demo[/] on {rpc_url or 'embedded eth-tester chain'}"
    )
    admin, account_a, account_b = devnet.funded_accounts(w3, 3)
    ledger = LedgerClient.deploy(w3, admin)
    now = max(int(time.time()), int(w3.eth.get_block("latest")["timestamp"]))
    with tempfile.TemporaryDirectory(prefix="parcelproof-consortium-") as tmp, ExitStack() as stack:
        couriers = []
        for name, account in (("Northwind Express", account_a), ("Bluebird Logistics", account_b)):
            courier_id = secrets.token_bytes(32)
            ledger.admit_courier(courier_id, account.address, sender=admin)
            agent = Agent(secrets.token_bytes(32))
            ledger.register_agent_key(agent.address, now - DAY, now + DAY, sender=account)
            engine = make_engine(sqlite_url(Path(tmp) / courier_id.hex()[:8]))
            upgrade(engine)
            stack.callback(engine.dispose)
            store = SqlStore(session_factory(engine), courier_id)
            node = CourierNode(
                courier_id=courier_id,
                ledger=ledger,
                account=account,
                keyring=envelope.Keyring(
                    [envelope.KeyEncryptionKey("k1", secrets.token_bytes(32))], "k1"
                ),
                shipment_key=secrets.token_bytes(32),
                store=store,
                agent_keys=AgentKeyDirectory(ledger),
            )
            token = credentials.issue(store, "demo", credentials.SCOPES)
            couriers.append(_Courier(name, node, store, agent, token))
        a, b = couriers
        console.print("\n[bold cyan]▸ Two nodes: own database, keys, chain account and API[/]")
        b.url = stack.enter_context(
            _serving(NodeServices(node=b.node, ledger=ledger, clients=b.store))
        )
        peers = PeerLookup.from_urls([b.url])
        stack.callback(peers.close)
        a.url = stack.enter_context(
            _serving(NodeServices(node=a.node, ledger=ledger, clients=a.store, peers=peers))
        )
        for c in couriers:
            c.client = stack.enter_context(httpx.Client(base_url=c.url, timeout=30))
            console.print(f"  {c.name}: {c.url}, log 0x{c.node.courier_id.hex()[:16]}…")

        console.print("\n[bold cyan]▸ A picks the parcel up and hands it to B; B delivers[/]")
        codes = {}
        for c in couriers:
            r = c.http().post(
                "/v1/shipments",
                headers=c.auth(),
                json={"tracking_number": PARCEL, "postcode": POSTCODE, "details": {"to": "Eva"}},
            )
            r.raise_for_status()
            codes[c.name] = r.json()["confirmation_code"]
        _event(a, {"status": "picked_up", "place": "Rotterdam"}, now - 900)
        ctx_a, ctx_b = _context(a), _context(b)
        handoff = eip712.Handoff(
            secrets.token_bytes(32),
            ctx_a.log_id,
            ctx_a.shipment,
            ctx_b.log_id,
            ctx_b.shipment,
            now - 600,
        )
        common: dict[str, JsonValue] = {
            "handoff_id": hex32(handoff.handoff_id),
            "handoff_time": now - 600,
            "place": "Den Haag hub",
        }
        offer = _event(
            a,
            {
                "status": "handoff_offered",
                "handoff_to": hex32(ctx_b.log_id),
                "counterparty_shipment": hex32(ctx_b.shipment),
                "counterparty_agent": b.agent.address,
                "counterparty_signature": "0x" + b.agent.sign_handoff(ctx_b.domain, handoff).hex(),
                **common,
            },
            now - 600,
        )
        _event(
            b,
            {
                "status": "handoff_accepted",
                "handoff_of": offer["commitment"],
                "handoff_from": hex32(ctx_a.log_id),
                "counterparty_shipment": hex32(ctx_a.shipment),
                "counterparty_agent": a.agent.address,
                "counterparty_signature": "0x" + a.agent.sign_handoff(ctx_a.domain, handoff).hex(),
                **common,
            },
            now - 500,
        )
        _event(b, {"status": "out_for_delivery"}, now - 300)
        _event(b, {"status": "delivered", "confirmation_code": codes[b.name]}, now - 120)
        for c in couriers:
            c.http().post("/v1/anchor", headers=c.auth()).raise_for_status()
        console.print("  both nodes anchored a checkpoint on the shared ledger")

        console.print("\n[bold cyan]▸ The customer asks node A only[/]")
        body = (
            a.http()
            .post("/v1/lookup", json={"tracking_number": PARCEL, "postcode": POSTCODE})
            .json()
        )
        bundle = body.get("bundle") or {}
        logs = {lg["logId"] for lg in bundle.get("logs", [])}
        expect(
            "one bundle holds both couriers' logs",
            logs == {hex32(a.node.courier_id), hex32(b.node.courier_id)},
            f"{len(logs)} log(s)",
        )
        statuses = [t["fields"].get("status") for t in body.get("timeline", [])]
        expect(
            "the timeline is the whole journey",
            statuses
            == [
                "picked_up",
                "handoff_offered",
                "handoff_accepted",
                "out_for_delivery",
                "delivered",
            ],
            " → ".join(str(s) for s in statuses),
        )
        report = verify_bundle(bundle, ledger)
        counter = [c for c in report.checks if c.name == "handoff-countersignature"]
        expect(
            "it verifies against the chain alone, both handoff signatures included",
            report.ok and len(counter) == 2,
            f"{len(report.checks)} checks",
        )
        alone = (
            b.http()
            .post("/v1/lookup", json={"tracking_number": PARCEL, "postcode": POSTCODE})
            .json()
        )
        expect(
            "node B alone (no peers configured) shows only its own log",
            len((alone.get("bundle") or {}).get("logs", [])) == 1,
        )
        result.bundle = bundle
    failed = [o for o in result.outcomes if not o.ok]
    console.print()
    if failed:
        console.print(f"[bold red]{len(failed)} of {len(result.outcomes)} expectations failed[/]")
    else:
        console.print(f"[bold green]All {len(result.outcomes)} expectations held.[/]")
    return result


def _context(c: _Courier) -> EventContext:
    r = c.http().post("/v1/shipments/context", json={"tracking_number": PARCEL}, headers=c.auth())
    r.raise_for_status()
    j = r.json()
    return EventContext(
        domain=eip712.Domain(chain_id=j["chain_id"], verifying_contract=j["verifying_contract"]),
        log_id=bytes.fromhex(j["log_id"][2:]),
        shipment=bytes.fromhex(j["shipment"][2:]),
        sequence=j["sequence"],
        previous=bytes.fromhex(j["previous"][2:]),
    )


def _event(c: _Courier, fields: dict[str, JsonValue], at: int) -> dict[str, Any]:
    """Sign the event on the agent's side and send it to the courier's node."""
    openings, signature = c.agent.sign(_context(c), fields, at)
    r = c.http().post(
        "/v1/events",
        headers=c.auth(),
        json={
            "event_id": uuid.uuid4().hex,
            "tracking_number": PARCEL,
            "event_time": at,
            "agent": c.agent.address,
            "signature": "0x" + signature.hex(),
            "fields": [o.to_json() for o in openings],
        },
    )
    r.raise_for_status()
    body: dict[str, Any] = r.json()
    return body
