"""The end-to-end demo: two couriers, signed milestones, a handoff, anchoring, proofs, tampering."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import secrets
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, text

from parcelproof.chain import devnet
from parcelproof.chain.ledger import LedgerClient
from parcelproof.core import eip712, envelope
from parcelproof.core.bundle import hex32, verify_bundle
from parcelproof.core.commitment import JsonValue
from parcelproof.core.errors import (
    AgentKeyNotValidError,
    DecryptionError,
    Error,
    InconsistentCheckpointError,
    NonGrowingCheckpointError,
    NotFoundError,
    SignatureError,
    TransitionError,
    UnauthorizedError,
)
from parcelproof.service.agent import Agent
from parcelproof.service.audit import AuditAction, AuditLog
from parcelproof.service.authz import RESOLVER
from parcelproof.service.keys import AgentKeyDirectory
from parcelproof.service.lookup import LookupResult, ParcelErasedError, dispute_bundle, lookup
from parcelproof.service.node import CourierNode
from parcelproof.service.privacy import verify_receipt
from parcelproof.service.staff import StaffService, totp_now
from parcelproof.store.audit_sql import SqlAuditStore
from parcelproof.store.db import make_engine, session_factory, sqlite_url, upgrade
from parcelproof.store.sql import SqlStore
from parcelproof.store.staff_sql import SqlStaffStore

HOUR = 3600
DAY = 24 * HOUR


@dataclass
class Outcome:
    """One thing the demo expects to happen, and whether it did."""

    what: str
    expected: str
    ok: bool
    detail: str = ""


@dataclass
class DemoResult:
    """Every expectation the demo checked; ``ok`` only when all behaved as expected."""

    outcomes: list[Outcome] = field(default_factory=list)
    bundle: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return bool(self.outcomes) and all(o.ok for o in self.outcomes)


def courier_id(name: str) -> bytes:
    """A courier's 32-byte id (and log id) derived from its public organisation name."""
    return hashlib.sha256(b"parcelproof:courier:" + name.encode()).digest()


class _Demo:
    def __init__(self, console: Console, rpc_url: str | None) -> None:
        self.console = console
        self.result = DemoResult()
        self.w3 = devnet.connect(rpc_url)
        self.backend = rpc_url or "embedded eth-tester chain"

    def step(self, text: str) -> None:
        self.console.print(f"\n[bold cyan]▸ {text}[/]")

    def expect_ok(self, what: str, fn: Callable[[], object]) -> Any:
        try:
            value = fn()
        except Error as e:
            self._record(Outcome(what, "succeeds", False, f"{type(e).__name__}: {e}"))
            return None
        self._record(Outcome(what, "succeeds", True))
        return value

    def expect_error(self, what: str, error: type[Error], fn: Callable[[], object]) -> None:
        try:
            fn()
        except error as e:
            self._record(Outcome(what, f"rejected ({error.__name__})", True, str(e)))
            return
        except Error as e:
            self._record(
                Outcome(what, f"rejected ({error.__name__})", False, f"{type(e).__name__}: {e}")
            )
            return
        self._record(Outcome(what, f"rejected ({error.__name__})", False, "was accepted"))

    def expect(self, what: str, ok: bool, detail: str = "") -> None:
        self._record(Outcome(what, "holds", ok, detail))

    def _record(self, outcome: Outcome) -> None:
        self.result.outcomes.append(outcome)
        mark = "[green]✔[/]" if outcome.ok else "[bold red]✘[/]"
        extra = f" [dim]— {outcome.detail}[/]" if outcome.detail else ""
        self.console.print(f"  {mark} {outcome.what}: {outcome.expected}{extra}")


def run_demo(
    console: Console | None = None, rpc_url: str | None = None, bundle_out: Path | None = None
) -> DemoResult:
    """Run the whole story; returns the outcomes (the CLI turns them into an exit code)."""
    console = console or Console()
    d = _Demo(console, rpc_url)
    w3 = d.w3
    console.print(f"[bold]ParcelProof demo[/] on {d.backend} (chain id {w3.eth.chain_id})")

    d.step("Consortium admin deploys ParcelLedger and admits two couriers")
    admin, account_a, account_b = devnet.funded_accounts(w3, 3)
    ledger = LedgerClient.deploy(w3, admin)
    console.print(f"  ParcelLedger at {ledger.address}")
    id_a, id_b = courier_id("Northwind Express"), courier_id("Bluebird Logistics")
    ledger.admit_courier(id_a, account_a.address, sender=admin)
    ledger.admit_courier(id_b, account_b.address, sender=admin)
    console.print(f"  courier A log {hex32(id_a)[:18]}…  courier B log {hex32(id_b)[:18]}…")

    # Each courier node keeps its data in its own SQLite database, as `serve` does.
    data_dir = Path(tempfile.mkdtemp(prefix="parcelproof-demo-"))
    engines: dict[bytes, Engine] = {}

    def node(cid: bytes, account: Any) -> CourierNode:
        engine = engines[cid] = make_engine(sqlite_url(data_dir / cid.hex()[:8]))
        upgrade(engine)
        keyring = envelope.Keyring(
            [envelope.KeyEncryptionKey("kek-2026-11", secrets.token_bytes(32))], "kek-2026-11"
        )
        return CourierNode(
            courier_id=cid,
            ledger=ledger,
            account=account,
            keyring=keyring,
            shipment_key=secrets.token_bytes(32),
            store=SqlStore(session_factory(engine), cid),
            agent_keys=AgentKeyDirectory(ledger, ttl=0, negative_ttl=0),
        )

    node_a, node_b = node(id_a, account_a), node(id_b, account_b)

    d.step("Couriers register their agents' signing keys on chain, with validity windows")
    now = max(node_a.clock.now(), int(w3.eth.get_block("latest")["timestamp"]))
    driver_a, depot_a, driver_b = (Agent(secrets.token_bytes(32)) for _ in range(3))
    retired = Agent(secrets.token_bytes(32))
    stolen = Agent(secrets.token_bytes(32))
    for agent in (driver_a, depot_a, stolen):
        ledger.register_agent_key(agent.address, now - 30 * DAY, now + 365 * DAY, sender=account_a)
    ledger.register_agent_key(retired.address, now - 30 * DAY, now - 10 * DAY, sender=account_a)
    ledger.register_agent_key(driver_b.address, now - 30 * DAY, now + 365 * DAY, sender=account_b)
    console.print("  A: driver, depot scanner (valid), one retired key (expired 10 days ago)")
    console.print("  B: driver (valid)")

    d.step("Couriers create parcels; details are encrypted, tracking numbers only HMAC'd")
    parcel, postcode = "PP1234567890FR", "69002"
    other = "PP5550001112FR"
    details = {"recipient": "Camille Martin", "address": "12 rue de la République, Lyon"}
    at_a = node_a.create_shipment(parcel, details, postcode)
    node_a.create_shipment(other, {"recipient": "Jules Moreau"}, "75011")

    d.step("Agents record signed milestones (EIP-712), including a handoff A → B")
    t = now - 6 * HOUR
    d.expect_ok(
        "picked up by A's driver",
        lambda: driver_a.record(node_a, parcel, {"status": "picked_up", "place": "Paris 11e"}, t),
    )
    driver_a.record(node_a, other, {"status": "pickup", "place": "Paris 11e"}, t + 60)
    d.expect_ok(
        "departed Paris hub (alias 'in_transit')",
        lambda: depot_a.record(
            node_a, parcel, {"status": "in_transit", "place": "Paris hub"}, t + HOUR
        ),
    )
    d.step("Courier A anchors its first checkpoint")
    first = node_a.anchor()
    d.expect("checkpoint 1 anchored", first is not None and first.size == 3)
    d.step("A hands the parcel to B at the Lyon cross-dock: both agents countersign")
    handoff_time = t + 3 * HOUR
    at_b = node_b.create_shipment(parcel, details, postcode, access_token=at_a.access_token)
    ref_a = node_a.event_context(parcel).shipment  # the parcel's reference on each log
    ref_b = node_b.event_context(parcel).shipment
    handoff = eip712.Handoff(secrets.token_bytes(32), id_a, ref_a, id_b, ref_b, handoff_time)
    sig_a = depot_a.sign_handoff(node_a.domain, handoff)  # A's scanner signs the handoff ...
    sig_b = driver_b.sign_handoff(node_b.domain, handoff)  # ... and so does B's driver
    common: dict[str, JsonValue] = {
        "handoff_id": hex32(handoff.handoff_id),
        "handoff_time": handoff_time,
    }
    offered: dict[str, JsonValue] = {
        "status": "handoff_offered",
        "place": "Lyon cross-dock",
        "handoff_to": hex32(id_b),
        "counterparty_shipment": hex32(ref_b),
        "counterparty_agent": driver_b.address,
        "counterparty_signature": "0x" + sig_b.hex(),
        **common,
    }
    offer = depot_a.record(node_a, parcel, offered, handoff_time)
    accepted: dict[str, JsonValue] = {
        "status": "handoff_accepted",
        "place": "Lyon cross-dock",
        "handoff_of": hex32(offer.commitment),
        "handoff_from": hex32(id_a),
        "counterparty_shipment": hex32(ref_a),
        "counterparty_agent": depot_a.address,
        "counterparty_signature": "0x" + sig_a.hex(),
        **common,
    }
    d.expect_ok(
        "B accepts on its node, carrying A's countersignature",
        lambda: driver_b.record(node_b, parcel, accepted, handoff_time + 600),
    )
    driver_b.record(
        node_b, parcel, {"status": "out_for_delivery", "place": "Lyon 2e"}, t + 5 * HOUR
    )
    pod_photo = hashlib.sha256(b"<jpeg bytes of the doorstep photo>").hexdigest()
    delivered = {
        "status": "delivered",
        "place": "Lyon 2e",
        "pod_photo_sha256": pod_photo,
        "confirmation_code": at_b.confirmation_code,
    }
    d.expect_ok(
        "B delivers: photo hash and the recipient's confirmation code",
        lambda: driver_b.record(node_b, parcel, delivered, t + 5 * HOUR + 900),
    )

    d.step("Bad events are refused at ingest")
    d.expect_error(
        "an expired agent key",
        AgentKeyNotValidError,
        lambda: retired.record(
            node_a, other, {"status": "departed", "place": "Paris hub"}, now - 60
        ),
    )
    ledger.revoke_agent_key(stolen.address, sender=account_a)
    revoked_at = int(w3.eth.get_block("latest")["timestamp"])
    d.expect_error(
        "a revoked agent key",
        AgentKeyNotValidError,
        lambda: stolen.record(
            node_a, other, {"status": "departed", "place": "Paris hub"}, max(revoked_at, now) + 1
        ),
    )
    d.expect_error(
        "a second delivery",
        TransitionError,
        lambda: driver_b.record(
            node_b, parcel, {"status": "delivered", "place": "Lyon 2e"}, t + 6 * HOUR
        ),
    )

    def forged() -> object:
        ctx = node_a.event_context(other)
        openings, signature = stolen.sign(ctx, {"status": "departed", "place": "x"}, now - 30)
        return node_a.record_event(
            other, openings, event_time=now - 30, agent=driver_a.address, signature=signature
        )

    d.expect_error("a signature by another key than the claimed agent", SignatureError, forged)

    def forged_handoff() -> object:
        node_b.create_shipment(other, {}, "75011")
        ref_other = node_b.event_context(other).shipment
        fake = eip712.Handoff(secrets.token_bytes(32), id_a, ref_a, id_b, ref_other, handoff_time)
        return driver_b.record(
            node_b,
            other,
            {
                "status": "handoff_accepted",
                "handoff_from": hex32(id_a),
                "counterparty_shipment": hex32(ref_a),
                "handoff_id": hex32(fake.handoff_id),
                "handoff_time": handoff_time,
                "counterparty_agent": depot_a.address,  # claims A's scanner countersigned ...
                "counterparty_signature": "0x" + driver_b.sign_handoff(node_b.domain, fake).hex(),
            },
            handoff_time,
        )

    d.expect_error("a handoff whose countersignature is not A's", SignatureError, forged_handoff)

    d.step("Both couriers anchor; the contract checks A's consistency proof on chain")
    second = d.expect_ok("A's checkpoint 2 (proved consistent with checkpoint 1)", node_a.anchor)
    d.expect_ok("B's first checkpoint", node_b.anchor)
    if second is not None:
        console.print(
            f"  A: size {second.size} root {hex32(second.root)[:18]}… block {second.block_number}"
        )
    d.expect_error(
        "A re-anchors the same size",
        NonGrowingCheckpointError,
        lambda: ledger.anchor_checkpoint(
            second.size if second else 0, second.root if second else bytes(32), [], sender=account_a
        ),
    )
    d.expect_error(
        "A anchors a forked history",
        InconsistentCheckpointError,
        lambda: ledger.anchor_checkpoint(
            (second.size if second else 0) + 1,
            secrets.token_bytes(32),
            [secrets.token_bytes(32)] * 3,
            sender=account_a,
        ),
    )
    d.expect_error(
        "an outsider anchors a checkpoint",
        UnauthorizedError,
        lambda: ledger.anchor_checkpoint(10, secrets.token_bytes(32), [], sender=admin),
    )

    d.step("The recipient looks the parcel up (tracking number + postcode)")
    result: LookupResult | None = d.expect_ok(
        "lookup with the right postcode", lambda: lookup([node_a, node_b], ledger, parcel, "69 002")
    )
    if result is None or result.bundle is None or result.report is None:
        return d.result
    _print_timeline(console, result, {id_a: "A", id_b: "B"})
    d.expect(
        "the bundle verifies against the chain alone",
        result.report.ok,
        ", ".join(
            f"{n} {name}" for name, n in Counter(c.name for c in result.report.checks).items()
        )
        if result.report.ok
        else "; ".join(f"{c.name} {c.subject}: {c.detail}" for c in result.report.failures),
    )
    revealed = json.dumps(result.bundle, ensure_ascii=False)
    personal = [parcel, "Camille", "République", postcode, at_b.confirmation_code]
    d.expect(
        "nothing personal in the bundle (proof-of-delivery photo only as its hash)",
        not any(_holds(revealed.encode(), value) for value in personal) and pod_photo in revealed,
    )
    d.result.bundle = result.bundle
    if bundle_out is not None:
        bundle_out.write_text(json.dumps(result.bundle, indent=2) + "\n")
        console.print(f"  bundle written to {bundle_out}")
    by_token = d.expect_ok(
        "lookup with the access token from the notification link instead",
        lambda: lookup([node_a, node_b], ledger, parcel, None, access_token=at_a.access_token),
    )
    d.expect(
        "the token shows the same verified timeline",
        by_token is not None
        and by_token.report is not None
        and by_token.report.ok
        and len(by_token.timeline) == len(result.timeline),
    )
    d.expect_error(
        "a wrong postcode (same answer as an unknown number)",
        NotFoundError,
        lambda: lookup([node_a, node_b], ledger, parcel, "75001"),
    )
    d.expect_error(
        "an unknown tracking number",
        NotFoundError,
        lambda: lookup([node_a, node_b], ledger, "PP0000000000FR", "69002"),
    )

    d.step("Tampering is detected")
    d.step("At rest: nothing personal in the nodes' database files")
    secrets_in_clear = [parcel, "Camille Martin", "République", postcode, at_b.confirmation_code]
    leaks = [
        f"{value!r} in {f.name}"
        for f in data_dir.rglob("*")
        if f.is_file()
        for value in secrets_in_clear
        if _holds(f.read_bytes(), value)
    ]
    d.expect(
        "no tracking number, name, address, postcode or code in any file",
        not leaks,
        "; ".join(leaks) or f"scanned {sum(1 for f in data_dir.rglob('*') if f.is_file())} files",
    )
    _tamper_drills(d, result.bundle, ledger, (node_a, node_b), engines, parcel, postcode)
    _accountability_and_erasure(d, ledger, node_a, node_b, engines[id_a], account_a, other)
    for engine in engines.values():
        engine.dispose()
    shutil.rmtree(data_dir, ignore_errors=True)

    failed = [o for o in d.result.outcomes if not o.ok]
    console.print()
    if failed:
        console.print(f"[bold red]{len(failed)} of {len(d.result.outcomes)} expectations failed[/]")
    else:
        console.print(
            f"[bold green]All {len(d.result.outcomes)} expectations held.[/] "
            "Every verification behaved as expected."
        )
    return d.result


def _holds(blob: bytes, value: str) -> bool:
    """Whether `value` appears in `blob` as a whole token (not inside a longer hex or number).

    A six-digit confirmation code turns up inside some hex string of a large bundle about
    once in a thousand runs; a leak would stand on its own, so only whole tokens count.
    """
    pattern = rb"(?<![0-9A-Za-z])" + re.escape(value.encode()) + rb"(?![0-9A-Za-z])"
    return re.search(pattern, blob) is not None


def _accountability_and_erasure(
    d: _Demo,
    ledger: LedgerClient,
    node_a: CourierNode,
    node_b: CourierNode,
    engine: Engine,
    account: Any,
    parcel: str,
) -> None:
    """A dispute resolver signs in with a second factor and reads evidence (audited, the audit
    head anchored on chain); the audit log catches an edit; a customer's parcel is erased."""
    d.step("A dispute resolver signs in (password + authenticator app) and reads evidence")
    audit = AuditLog(SqlAuditStore(session_factory(engine), node_a.courier_id))
    staff = StaffService(
        SqlStaffStore(session_factory(engine), node_a.courier_id), node_a.keyring, audit=audit
    )
    password = secrets.token_urlsafe(18)
    staff.create_user("resolver.lea", RESOLVER, password)
    first = staff.login("resolver.lea", password)
    d.expect(
        "without a second factor a resolver may only enrol one",
        first.status == "enrol-required"
        and staff.principal(first.token).permissions == {"mfa:enrol"},
    )
    uri = staff.enrol_totp(first.token).otpauth_uri  # scanned by the authenticator app
    secret = parse_qs(urlsplit(uri).query)["secret"][0]
    session = staff.confirm_totp(first.token, totp_now(secret)).token
    resolver = staff.principal(session)
    resolver.check("read")
    evidence = dispute_bundle([node_a, node_b], ledger, parcel)
    audit.record(
        resolver.actor,
        AuditAction.EVIDENCE_READ,
        node_a.shipment_id(parcel),
        {"events": len(evidence.timeline)},
    )
    anchored = audit.anchor(ledger, sender=account)
    report = audit.verify_against(ledger.audit_heads(node_a.courier_id))
    d.expect(
        "the audit log (login, enrolment, evidence read) is intact and its head on chain",
        report.ok and anchored is not None and anchored.size == report.size,
        f"{report.size} entries, head anchored in block {anchored.block_number}"
        if anchored is not None
        else "",
    )
    with engine.begin() as c:  # an insider hides who read the evidence
        c.execute(
            text("UPDATE audit_log SET actor = 'staff:someone-else' WHERE action = :a"),
            {"a": AuditAction.EVIDENCE_READ.value},
        )
    report = audit.verify_against(ledger.audit_heads(node_a.courier_id))
    d.expect(
        "an edited audit entry is caught (`parcelproof audit verify`)",
        not report.ok and any(p.kind == "edited" for p in report.problems),
        "; ".join(p.message for p in report.problems[:1]),
    )

    d.step("The sender of the other parcel asks for erasure: both couriers destroy its keys")
    receipt = node_a.erase(parcel, "request")
    node_b.erase(parcel, "request")  # B registered it too (the forged-handoff drill above)
    d.expect_ok(
        "the signed erasure receipt verifies against the courier's account on chain",
        lambda: verify_receipt(receipt.to_json(), ledger),
    )
    try:
        lookup([node_a, node_b], ledger, parcel, "75011")
        d.expect("the lookup says the details were erased", False, "it answered normally")
    except ParcelErasedError as erased:
        left = erased.result
        d.expect(
            "the lookup says the details were erased; what is left still verifies",
            left.report is not None
            and not left.report.failures
            and all(not t.fields for t in left.timeline),
            f"{len(left.timeline)} event(s) without fields",
        )
    with engine.connect() as c:
        wrapped = c.scalar(
            text("SELECT wrapped_key_blob FROM shipments WHERE shipment_id = :s"),
            {"s": node_a.shipment_id(parcel)},
        )
    exported = node_a.export(parcel)
    d.expect(
        "the data key is gone: nobody can decrypt the details any more",
        wrapped is None and exported["shipment"]["details"] is None,
        "the export holds the erasure record and no details",
    )


def _tamper_drills(
    d: _Demo,
    bundle: dict[str, Any],
    ledger: LedgerClient,
    nodes: tuple[CourierNode, CourierNode],
    engines: dict[bytes, Engine],
    parcel: str,
    postcode: str,
) -> None:
    def failing_checks(b: dict[str, Any]) -> str:
        report = verify_bundle(b, ledger)
        return ", ".join(sorted({c.name for c in report.failures}))

    changed = copy.deepcopy(bundle)
    last = changed["logs"][-1]["events"][-1]
    status = next(f for f in last["revealed"] if f["name"] == "status")
    status["value"] = "delivery_failed"
    failed = failing_checks(changed)
    d.expect(
        "one revealed field changed in the bundle ('delivered' → 'delivery_failed')",
        "commitment" in failed,
        f"failed checks: {failed}",
    )

    flipped = copy.deepcopy(bundle)
    proof_event = next(e for lg in flipped["logs"] for e in lg["events"] if e["inclusionProof"])
    raw = bytearray.fromhex(proof_event["inclusionProof"][0][2:])
    raw[7] ^= 0x01
    proof_event["inclusionProof"][0] = "0x" + raw.hex()
    failed = failing_checks(flipped)
    d.expect(
        "one byte of an inclusion proof flipped", "inclusion" in failed, f"failed checks: {failed}"
    )

    moved = copy.deepcopy(bundle)
    moved["logs"][0]["checkpoint"]["root"] = "0x" + secrets.token_hex(32)
    failed = failing_checks(moved)
    d.expect(
        "a checkpoint root the chain never saw", "checkpoint" in failed, f"failed checks: {failed}"
    )

    # An insider with the database AND the keys rewrites a stored field and re-encrypts it.
    node_a, node_b = nodes
    store = node_b.store
    shipment = store.shipment_by_ref(node_b.event_context(parcel).shipment)
    if shipment is None:
        raise NotFoundError("the demo parcel vanished from courier B's store")
    delivered = store.events(shipment.shipment_id)[-1]
    data_key = envelope.unwrap_data_key(node_b.keyring, shipment.wrapped_key, shipment.shipment_id)
    openings = json.loads(
        envelope.open_sealed(
            data_key,
            delivered.sealed_openings,
            shipment_id=shipment.shipment_id,
            event_id=delivered.event_id,
            purpose="event",
        )
    )
    for o in openings:
        if o["name"] == "place":
            o["value"] = "Lyon 3e"
    rewritten = envelope.seal(
        data_key,
        json.dumps(openings).encode(),
        shipment_id=shipment.shipment_id,
        event_id=delivered.event_id,
        purpose="event",
    )
    overwrite = _overwriter(engines[node_b.courier_id], delivered.event_id)
    overwrite(rewritten)
    report = lookup([node_a, node_b], ledger, parcel, postcode).report
    failed = ", ".join(sorted({c.name for c in report.failures})) if report else "no report"
    d.expect(
        "a stored field rewritten and re-encrypted by an insider",
        report is not None and not report.ok,
        f"server-side verification failed: {failed}",
    )

    # Someone without the keys flips one byte of a stored ciphertext.
    blob = bytearray(rewritten)
    blob[20] ^= 0x01
    overwrite(bytes(blob))
    d.expect_error(
        "one byte of a stored ciphertext flipped",
        DecryptionError,
        lambda: lookup([node_a, node_b], ledger, parcel, postcode),
    )
    overwrite(delivered.sealed_openings)


def _overwriter(engine: Engine, event_id: str) -> Callable[[bytes], None]:
    """What an insider with database access does: UPDATE a stored event's ciphertext."""

    def overwrite(blob: bytes) -> None:
        with engine.begin() as connection:
            connection.execute(
                text("UPDATE events SET sealed_openings = :blob WHERE event_id = :id"),
                {"blob": blob, "id": event_id},
            )

    return overwrite


def _print_timeline(console: Console, result: LookupResult, names: dict[bytes, str]) -> None:
    table = Table(title="Parcel timeline (as the recipient sees it)")
    for col in ("time (UTC)", "courier", "#", "status", "place", "block"):
        table.add_column(col, no_wrap=True)
    for entry in result.timeline:
        when = datetime.fromtimestamp(entry.event_time, UTC).strftime("%H:%M")
        block = "pending" if entry.block_number is None else str(entry.block_number)
        if entry.anchoring == "confirmed":
            block += " ✓"
        table.add_row(
            when,
            names.get(entry.log_id, hex32(entry.log_id)[:10] + "…"),
            str(entry.sequence),
            str(entry.fields.get("status", "")),
            str(entry.fields.get("place", "")),
            block,
        )
    console.print(table)
