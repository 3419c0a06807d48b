"""Seeded single-byte tamper fuzzing of a small anchored world: stored rows and proof bundles."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import rfc8785
from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy import Engine, Select, column, literal_column, select, table, text, update
from web3 import Web3
from web3.types import Wei

from parcelproof.chain import devnet
from parcelproof.chain.ledger import Checkpoint, LedgerClient
from parcelproof.core import eip712, envelope
from parcelproof.core.bundle import (
    LedgerView,
    Report,
    bundle_to_json,
    hex32,
    parse_bundle,
    verify_bundle,
)
from parcelproof.core.commitment import JsonValue
from parcelproof.core.errors import Error, NotFoundError
from parcelproof.service.agent import Agent
from parcelproof.service.lookup import LookupResult, lookup
from parcelproof.service.node import CourierNode
from parcelproof.store.db import make_engine, session_factory, sqlite_url, upgrade
from parcelproof.store.sql import SqlStore

T = TypeVar("T")

#: What a mutation may hit, spread evenly: five kinds of stored rows, and the customer's bundle.
KINDS = (
    "event_ciphertext",
    "commitment",
    "log_node",
    "checkpoint",
    "shipment_sealed",
    "bundle",
)
DETECTED, HARMLESS, UNDETECTED = "detected", "harmless", "undetected"
VERDICTS = (DETECTED, HARMLESS, UNDETECTED)
#: Prefix of a detector that is an exception outside ParcelProof's Error hierarchy: the input
#: was refused, but by a crash (reported as a finding, never hidden).
CRASH = "CRASH"


@dataclass(frozen=True)
class Cell:
    """A stored column the engine flips bytes in, and the columns that name its rows."""

    table: str
    column: str
    label: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.table}.{self.column}"


_EVENT = ("log_id", "shipment_id", "sequence")
_SHIPMENT = ("log_id", "shipment_id")
#: The stored columns of each target kind (one is drawn uniformly, then a row, then a byte).
STORED: dict[str, tuple[Cell, ...]] = {
    "event_ciphertext": (Cell("events", "sealed_openings", _EVENT),),
    "commitment": (Cell("events", "commitment", _EVENT), Cell("events", "previous", _EVENT)),
    "log_node": (Cell("log_nodes", "hash", ("log_id", "level", "index")),),
    "checkpoint": (Cell("checkpoints", "root", ("log_id", "size")),),
    "shipment_sealed": (
        Cell("shipments", "wrapped_key_blob", _SHIPMENT),
        Cell("shipments", "sealed_factor", _SHIPMENT),
        Cell("shipments", "sealed_details", _SHIPMENT),
    ),
}


# --- the chain, frozen ------------------------------------------------------------------------


class FrozenLedger:
    """The ledger client as the nodes and the verifier see it. After :meth:`freeze` (the world
    is built; the fuzz sends no transaction) every read is memoised by its exact arguments,
    errors included: while nothing is mined the chain answers a question the same way, and a
    mutation that changes a question (another size, agent or time) still goes to the chain.
    Anchoring after the freeze is refused; :meth:`check_frozen` proves no block was added."""

    def __init__(self, client: LedgerClient) -> None:
        self.client = client
        self.frozen_at: int | None = None
        self.chain_reads = 0  # reads that went to the chain after the freeze
        self._memo: dict[tuple[object, ...], tuple[bool, object]] = {}

    @property
    def chain_id(self) -> int:
        return self.client.chain_id

    @property
    def address(self) -> str:
        return self.client.address

    def freeze(self) -> None:
        self.frozen_at = self.client.block_number()

    def check_frozen(self) -> None:
        if self.frozen_at is not None and self.client.block_number() != self.frozen_at:
            raise AssertionError("the chain moved during the fuzz: memoised reads are stale")

    def _read(self, key: tuple[object, ...], thunk: Callable[[], T]) -> T:
        if self.frozen_at is None:
            return thunk()
        if key not in self._memo:
            self.chain_reads += 1
            try:
                self._memo[key] = (True, thunk())
            except Error as e:
                self._memo[key] = (False, e)
        ok, value = self._memo[key]
        if not ok:
            raise cast(Error, value).with_traceback(None)
        return cast(T, value)

    def checkpoint_root(self, courier_id: bytes, size: int) -> bytes:
        key = ("root", courier_id, size)
        return self._read(key, lambda: self.client.checkpoint_root(courier_id, size))

    def is_agent_key_valid(self, courier_id: bytes, agent: str, at: int) -> bool:
        key = ("agent", courier_id, agent, at)
        return self._read(key, lambda: self.client.is_agent_key_valid(courier_id, agent, at))

    def latest_checkpoint(self, courier_id: bytes) -> Checkpoint | None:
        key = ("latest", courier_id)
        return self._read(key, lambda: self.client.latest_checkpoint(courier_id))

    def checkpoints(self, courier_id: bytes, from_block: int = 0) -> list[Checkpoint]:
        key = ("checkpoints", courier_id, from_block)
        return self._read(key, lambda: self.client.checkpoints(courier_id, from_block))

    def block_number(self) -> int:
        return self._read(("block",), self.client.block_number)

    def anchor_checkpoint(
        self, size: int, root: bytes, proof: Sequence[bytes], *, sender: Any
    ) -> Checkpoint:
        if self.frozen_at is not None:
            raise AssertionError("the world is frozen: nothing may be anchored during the fuzz")
        return self.client.anchor_checkpoint(size, root, proof, sender=sender)


# --- the world --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Parcel:
    """A parcel a customer looks up."""

    tracking_number: str
    postcode: str


@dataclass(frozen=True)
class Detection:
    """One thing verification reported: the detector, its subject and its message."""

    detector: str
    subject: str
    message: str


@dataclass(frozen=True)
class Observation:
    """What every customer lookup and operator reconcile answered, and its exact fingerprint."""

    detections: tuple[Detection, ...]
    fingerprint: str


@dataclass
class World:
    """One ledger on the embedded chain; two courier nodes sharing a SQLite database; four
    parcels whose events are anchored in three checkpoints per log, one parcel handed over from
    courier A to courier B; and the verified baseline every mutation is compared with."""

    ledger: FrozenLedger
    nodes: tuple[CourierNode, ...]
    parcels: tuple[Parcel, ...]
    engine: Engine
    names: dict[str, str]  # log id (hex) or shipment id -> short name ("A", "B:PP…")
    verify: Callable[[Mapping[str, Any], LedgerView], Report] = verify_bundle
    baseline: Observation = Observation((), "")
    state: str = ""  # digest of every row of every table, untouched
    bundles: dict[str, str] = field(default_factory=dict)  # tracking number -> json.dumps
    meanings: dict[str, bytes] = field(default_factory=dict)  # tracking number -> _meaning


@dataclass(frozen=True)
class _Courier:
    name: str
    node: CourierNode
    agent: Agent


def _accounts(w3: Web3, rng: random.Random, n: int) -> list[LocalAccount]:
    """Like devnet.funded_accounts, with keys drawn from ``rng`` (a reproducible world)."""
    accounts: list[LocalAccount] = [Account.from_key(rng.randbytes(32)) for _ in range(n)]
    source = w3.eth.accounts[0]
    for acct in accounts:
        tx = w3.eth.send_transaction({"from": source, "to": acct.address, "value": Wei(10**20)})
        assert w3.eth.wait_for_transaction_receipt(tx)["status"] == 1
    return accounts


def build_world(workdir: Path, seed: int = 0) -> World:
    """Build the world in ``workdir``, anchor it, freeze the chain and record the baseline,
    which must verify completely. Keys, salts and nonces come from ``seed``."""
    rng = random.Random(f"tamper-world-{seed}")
    w3 = devnet.connect(None)
    admin, account_a, account_b = _accounts(w3, rng, 3)
    client = LedgerClient.deploy(w3, admin)
    ledger = FrozenLedger(client)
    block_time = int(w3.eth.get_block("latest")["timestamp"])
    now = max(int(time.time()), block_time) // 3600 * 3600  # the same digits all hour long
    engine = make_engine(sqlite_url(workdir))
    upgrade(engine)
    sessions = session_factory(engine)
    couriers: list[_Courier] = []
    names: dict[str, str] = {}
    for name, account in (("A", account_a), ("B", account_b)):
        courier_id = rng.randbytes(32)
        client.admit_courier(courier_id, account.address, sender=admin)
        agent = Agent(rng.randbytes(32), rng=rng.randbytes)
        client.register_agent_key(agent.address, now - 86400, now + 86400, sender=account)
        node = CourierNode(
            courier_id=courier_id,
            ledger=ledger,
            account=account,
            keyring=envelope.Keyring([envelope.KeyEncryptionKey("k1", rng.randbytes(32))], "k1"),
            shipment_key=rng.randbytes(32),
            store=SqlStore(sessions, courier_id),
            rng=rng.randbytes,
        )
        couriers.append(_Courier(name, node, agent))
        names[courier_id.hex()] = name
    a, b = couriers
    parcels = tuple(Parcel(f"PP10000000{i}NL", f"10{i}2 AB") for i in range(1, 5))
    p1, p2, p3, p4 = (p.tracking_number for p in parcels)
    codes: dict[str, str] = {}
    for c, p in (
        (a, parcels[0]),
        (a, parcels[1]),
        (a, parcels[2]),
        (b, parcels[2]),
        (b, parcels[3]),
    ):
        created = c.node.create_shipment(p.tracking_number, {"recipient": "R. Doe"}, p.postcode)
        codes[p.tracking_number] = created.confirmation_code
        names[created.shipment_id] = f"{c.name}:{p.tracking_number}"

    clock = iter(range(now - 7200, now, 60))

    def record(c: _Courier, tn: str, fields: dict[str, JsonValue]) -> bytes:
        return c.agent.record(c.node, tn, fields, next(clock)).commitment

    record(a, p1, {"status": "picked_up", "place": "Rotterdam depot"})
    record(a, p1, {"status": "departed", "place": "Rotterdam depot"})
    record(a, p2, {"status": "picked_up", "place": "Utrecht"})
    record(a, p3, {"status": "picked_up", "place": "Delft"})
    record(b, p4, {"status": "picked_up", "place": "Antwerpen"})
    _anchor(a, b)
    record(a, p1, {"status": "arrived", "place": "Amsterdam hub"})
    record(a, p2, {"status": "departed", "place": "Zürich Flughafen"})  # a \u escape in JSON
    _handoff(a, b, p3, record, next(clock))
    record(b, p4, {"status": "departed", "place": "Gent"})
    _anchor(a, b)
    record(a, p1, {"status": "out_for_delivery"})
    record(a, p1, {"status": "delivered", "confirmation_code": codes[p1]})
    record(a, p2, {"status": "arrived", "place": "Basel"})
    record(b, p3, {"status": "out_for_delivery"})
    record(b, p4, {"status": "arrived", "place": "Brussel"})
    _anchor(a, b)

    ledger.freeze()
    world = World(ledger, (a.node, b.node), parcels, engine, names)
    world.baseline = observe(world)
    if world.baseline.detections:
        raise AssertionError(f"the untouched world does not verify: {world.baseline.detections}")
    world.state = state_digest(engine)
    for p in parcels:
        result = lookup(world.nodes, ledger, p.tracking_number, p.postcode)
        assert result.bundle is not None
        world.bundles[p.tracking_number] = json.dumps(result.bundle)
        world.meanings[p.tracking_number] = _meaning(json.loads(world.bundles[p.tracking_number]))
    return world


def _anchor(*couriers: _Courier) -> None:
    for c in couriers:
        if c.node.anchor() is None:
            raise AssertionError(f"courier {c.name} had nothing new to anchor")


def _handoff(
    a: _Courier,
    b: _Courier,
    tn: str,
    record: Callable[[_Courier, str, dict[str, JsonValue]], bytes],
    at: int,
) -> None:
    """A hands parcel ``tn`` over to B; each side's event carries the other's countersignature."""
    ctx_a, ctx_b = a.node.event_context(tn), b.node.event_context(tn)
    handoff_id = hashlib.sha256(b"tamper-handoff").digest()
    handoff = eip712.Handoff(
        handoff_id, ctx_a.log_id, ctx_a.shipment, ctx_b.log_id, ctx_b.shipment, at
    )
    common: dict[str, JsonValue] = {"handoff_id": hex32(handoff_id), "handoff_time": at}
    offer = record(
        a,
        tn,
        {
            "status": "handoff_offered",
            "place": "Den Haag hub",
            "handoff_to": hex32(ctx_b.log_id),
            "counterparty_shipment": hex32(ctx_b.shipment),
            "counterparty_agent": b.agent.address,
            "counterparty_signature": "0x" + b.agent.sign_handoff(ctx_b.domain, handoff).hex(),
            **common,
        },
    )
    record(
        b,
        tn,
        {
            "status": "handoff_accepted",
            "place": "Den Haag hub",
            "handoff_of": hex32(offer),
            "handoff_from": hex32(ctx_a.log_id),
            "counterparty_shipment": hex32(ctx_a.shipment),
            "counterparty_agent": a.agent.address,
            "counterparty_signature": "0x" + a.agent.sign_handoff(ctx_a.domain, handoff).hex(),
            **common,
        },
    )


@contextmanager
def open_world(seed: int = 0) -> Iterator[World]:
    """A world in a temporary directory, disposed of afterwards."""
    with tempfile.TemporaryDirectory(prefix="parcelproof-tamper-") as tmp:
        world = build_world(Path(tmp), seed)
        try:
            yield world
        finally:
            world.engine.dispose()


def state_digest(engine: Engine) -> str:
    """SHA-256 over every row of every table of the database: equal digests, equal state."""
    digest = hashlib.sha256()
    with engine.connect() as connection:
        names = connection.execute(
            text("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        ).scalars()
        for name in list(names):
            query: Select[Any] = select(literal_column("*")).select_from(table(name))
            rows = connection.execute(query.order_by(literal_column("rowid"))).all()
            digest.update(repr((name, [tuple(r) for r in rows])).encode())
    return digest.hexdigest()


# --- verification, as customers and operators run it -----------------------------------------


def observe(world: World) -> Observation:
    """Look every parcel up on both nodes (the server-side lookup verifies the bundle against
    the chain) and reconcile every node with the chain; collect what they detect, and an exact
    fingerprint of what they answered."""
    detections: list[Detection] = []
    parts: list[str] = []
    for p in world.parcels:
        try:
            result = lookup(world.nodes, world.ledger, p.tracking_number, p.postcode)
        except Exception as e:  # our Error is a detection; anything else a crash, reported
            detections.append(_raised("lookup", p.tracking_number, e))
            parts.append(f"{p.tracking_number}: raised {type(e).__name__}")
            continue
        if result.report is None:
            detections.append(Detection("lookup: no bundle", p.tracking_number, ""))
        elif not result.report.ok:
            failures = result.report.failures
            message = "; ".join(f"{c.name} {c.subject}: {c.detail}" for c in failures)
            detections.append(
                Detection(f"verify_bundle: {failures[0].name}", p.tracking_number, message)
            )
        parts.append(_fingerprint(p.tracking_number, result))
    for node in world.nodes:
        name = world.names[node.courier_id.hex()]
        try:
            parts.append(f"reconcile {name}: {node.reconcile()!r}")
        except Exception as e:
            detections.append(_raised("reconcile", name, e))
            parts.append(f"reconcile {name}: raised {type(e).__name__}")
    return Observation(tuple(detections), "\n".join(parts))


def _raised(what: str, subject: str, e: Exception) -> Detection:
    if isinstance(e, Error):
        return Detection(f"{what} raised {type(e).__name__}", subject, str(e))
    return Detection(f"{CRASH} {what} raised {type(e).__name__}", subject, repr(e))


def _fingerprint(tracking_number: str, result: LookupResult) -> str:
    body = {
        "timeline": [dataclasses.asdict(t) for t in result.timeline],
        "bundle": result.bundle,
        "report": None if result.report is None else result.report.to_json(),
        "erasures": [dataclasses.asdict(e) for e in result.erasures],
    }
    return f"{tracking_number}: " + json.dumps(body, sort_keys=True, default=_hex)


def _hex(value: object) -> str:
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"cannot fingerprint {type(value).__name__}")


def _meaning(obj: object) -> bytes:
    """What a bundle says once strictly parsed: re-serialised canonically (hex strings as the
    bytes they encode, addresses as addresses, revealed JSON values as values)."""
    return bytes(rfc8785.dumps(bundle_to_json(parse_bundle(obj))))


def _latent(world: World) -> str:
    """Whether the operator's export, which opens every sealed column, notices the damage."""
    for node in world.nodes:
        for p in world.parcels:
            try:
                node.export(p.tracking_number)
            except NotFoundError:
                continue
            except Error as e:
                return f"latent: node.export raises {type(e).__name__}"
    return "node.export unaffected too"


# --- mutations --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """The classification of one mutation."""

    kind: str
    target: str  # the column ("events.commitment") or "bundle"
    where: str  # row or parcel, byte position and XOR mask
    verdict: str  # detected, harmless or undetected
    detector: str = ""  # detected: the check or error that caught it first
    reason: str = ""  # harmless: the proof; undetected: what changed; detected: every message

    def describe(self) -> str:
        what = self.detector if self.verdict == DETECTED else self.reason
        return f"[{self.kind}] {self.target} {self.where}: {self.verdict}: {what}"


class RestoreError(AssertionError):
    """Restoring the original byte did not give the baseline back: mutations would leak."""


def _rows(world: World, cell: Cell) -> list[tuple[int, bytes, str]]:
    t = table(cell.table, column(cell.column), *(column(c) for c in cell.label))
    query = (
        select(literal_column("rowid"), t.c[cell.column], *(t.c[c] for c in cell.label))
        .where(t.c[cell.column].is_not(None))
        .order_by(literal_column("rowid"))
    )
    with world.engine.connect() as connection:
        return [
            (int(r[0]), bytes(r[1]), _label(world, cell, tuple(r[2:])))
            for r in connection.execute(query)
        ]


def _label(world: World, cell: Cell, values: Sequence[object]) -> str:
    shown = []
    for name, value in zip(cell.label, values, strict=True):
        raw = value.hex() if isinstance(value, bytes) else str(value)
        shown.append(world.names.get(raw, raw) if name.endswith("_id") else f"{name} {raw}")
    return " ".join(shown)


def _read(engine: Engine, cell: Cell, rowid: int) -> bytes:
    t = table(cell.table, column(cell.column))
    query = select(t.c[cell.column]).where(literal_column("rowid") == rowid)
    with engine.connect() as connection:
        return bytes(connection.execute(query).scalar_one())


def _write(engine: Engine, cell: Cell, rowid: int, value: bytes) -> None:
    """Overwrite one cell by SQL on the database, behind the store's back."""
    t = table(cell.table, column(cell.column))
    statement = update(t).where(literal_column("rowid") == rowid).values({cell.column: value})
    with engine.begin() as connection:
        if connection.execute(statement).rowcount != 1:
            raise AssertionError(f"{cell.name} row {rowid} vanished")


def tamper_row(
    world: World,
    kind: str,
    cell: Cell,
    rowid: int,
    position: int,
    mask: int,
    label: str = "",
    *,
    recheck: bool = True,
) -> Outcome:
    """Flip byte ``position`` of one stored cell (XOR ``mask``), verify, classify, restore.

    After restoring, the database must be row for row the untouched one (its digest); with
    ``recheck`` the world is also verified again and must answer exactly the baseline."""
    original = _read(world.engine, cell, rowid)
    mutated = bytearray(original)
    mutated[position] ^= mask
    where = f"{label or f'rowid {rowid}'} byte {position}/{len(original)} ^0x{mask:02x}"
    _write(world.engine, cell, rowid, bytes(mutated))
    try:
        seen = observe(world)
        same = seen.fingerprint == world.baseline.fingerprint
        latent = _latent(world) if same and not seen.detections else ""
    finally:
        _write(world.engine, cell, rowid, original)
    if state_digest(world.engine) != world.state:
        raise RestoreError(f"restoring {cell.name} {where} did not give the untouched database")
    if recheck:
        again = observe(world)
        if again != world.baseline:
            raise RestoreError(f"after restoring {cell.name} {where} the world verifies no more")
    if seen.detections:
        detail = "; ".join(f"{d.subject}: {d.detector}: {d.message}" for d in seen.detections)
        return Outcome(kind, cell.name, where, DETECTED, seen.detections[0].detector, detail)
    if same:
        reason = (
            f"byte in a column verification does not read: {cell.name} (every lookup's "
            f"timeline and bundle and every reconcile byte-identical; {latent})"
        )
        return Outcome(kind, cell.name, where, HARMLESS, reason=reason)
    changed = _first_difference(world.baseline.fingerprint, seen.fingerprint)
    return Outcome(kind, cell.name, where, UNDETECTED, reason=f"all checks passed, {changed}")


def _first_difference(before: str, after: str) -> str:
    i = next(
        (i for i, (x, y) in enumerate(zip(before, after, strict=False)) if x != y),
        min(len(before), len(after)),
    )
    return (
        f"yet the answer changed at char {i}: "
        f"{before[max(0, i - 60) : i + 30]!r} -> {after[max(0, i - 60) : i + 30]!r}"
    )


_WHITESPACE = " \t\n\r"
_ADDRESS_KEYS = frozenset({"agent", "ledger"})


def tamper_bundle(world: World, tracking_number: str, position: int, mask: int) -> Outcome:
    """Flip byte ``position`` of the parcel's bundle JSON (XOR ``mask``) and check it as a
    customer's verifier would: malformed input is rejected, and a bundle that still verifies
    must mean exactly what the untouched one means."""
    original = world.bundles[tracking_number]
    raw = bytearray(original.encode())
    raw[position] ^= mask
    near = _key_at(original, position)
    where = f"{tracking_number} byte {position}/{len(raw)} ^0x{mask:02x} near {near!r}"

    def detected(detector: str, message: str = "") -> Outcome:
        return Outcome("bundle", "bundle", where, DETECTED, detector, message)

    try:
        mutated = bytes(raw).decode("utf-8")
    except UnicodeDecodeError as e:
        return detected("rejected as malformed: not UTF-8", str(e))
    try:
        obj = json.loads(mutated)
    except json.JSONDecodeError as e:
        return detected("rejected as malformed: not JSON", str(e))
    try:
        report = world.verify(obj, world.ledger)
    except Error as e:
        return detected(f"verify_bundle raised {type(e).__name__}", str(e))
    except Exception as e:
        return detected(f"{CRASH} verify_bundle raised {type(e).__name__}", repr(e))
    if not report.ok:
        failures = report.failures
        message = "; ".join(f"{c.name} {c.subject}: {c.detail}" for c in failures)
        return detected(f"verify_bundle: {failures[0].name if failures else 'no check'}", message)
    try:
        same = _meaning(obj) == world.meanings[tracking_number]
        what = "it verified yet means something else"
    except Error as e:
        same, what = False, f"it verified yet does not even parse ({type(e).__name__}: {e})"
    if same:
        reason = _why_same(original, mutated, position)
        return Outcome("bundle", "bundle", where, HARMLESS, reason=reason)
    context = f"{original[max(0, position - 30) : position + 30]!r} -> "
    context += repr(mutated[max(0, position - 30) : position + 30])
    return Outcome("bundle", "bundle", where, UNDETECTED, reason=f"{what}: {context}")


def _key_at(text_: str, position: int) -> str:
    """The last JSON key that starts before ``position`` (the one whose value holds it, unless
    ``position`` falls in punctuation or in a key's name)."""
    end = text_.rfind('": ', 0, position + 3)
    start = text_.rfind('"', 0, end)
    return text_[start + 1 : end] if end > 0 and start >= 0 else ""


def _why_same(original: str, mutated: str, position: int) -> str:
    before, after = original[position], mutated[position]
    if before in _WHITESPACE and after in _WHITESPACE:
        return "JSON whitespace only: the same document"
    escape = original.rfind("\\u", max(0, position - 5), position)
    if escape >= 0 and escape + 2 <= position <= escape + 5:
        return "case of a \\u escape only: the same string"
    if before.lower() == after.lower() and before.lower() in "0123456789abcdef":
        if _key_at(original, position) in _ADDRESS_KEYS:
            return "address letter case only: the same 20 bytes (EIP-55 case is not enforced)"
        return "hex digit case only: the same bytes"
    return f"parses to the same bundle ({before!r} -> {after!r})"


# --- the run ----------------------------------------------------------------------------------


@dataclass
class Tally:
    """Every outcome of a run, with counts by verdict, target kind and detector."""

    seed: int
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0
    rechecks: int = 0  # full re-verifications of a restored world
    chain_reads: int = 0  # distinct reads that went to the chain during the run

    def count(self, verdict: str, kind: str | None = None) -> int:
        return sum(1 for o in self.outcomes if o.verdict == verdict and kind in (None, o.kind))

    @property
    def total(self) -> int:
        return len(self.outcomes)

    @property
    def detected(self) -> int:
        return self.count(DETECTED)

    @property
    def harmless(self) -> int:
        return self.count(HARMLESS)

    @property
    def undetected(self) -> int:
        return self.count(UNDETECTED)

    def by_kind(self) -> dict[str, dict[str, int]]:
        rows: dict[str, dict[str, int]] = {}
        for o in self.outcomes:
            row = rows.setdefault(o.kind, {"total": 0, **dict.fromkeys(VERDICTS, 0)})
            row["total"] += 1
            row[o.verdict] += 1
        return {k: rows[k] for k in KINDS if k in rows}

    def by_target(self) -> dict[str, dict[str, int]]:
        rows: dict[str, dict[str, int]] = {}
        for o in self.outcomes:
            row = rows.setdefault(o.target, {"total": 0, **dict.fromkeys(VERDICTS, 0)})
            row["total"] += 1
            row[o.verdict] += 1
        return dict(sorted(rows.items()))

    def by_detector(self) -> Counter[str]:
        return Counter(o.detector for o in self.outcomes if o.verdict == DETECTED)

    def detectors_by_kind(self) -> dict[str, Counter[str]]:
        found: dict[str, Counter[str]] = {}
        for o in self.outcomes:
            if o.verdict == DETECTED:
                found.setdefault(o.kind, Counter())[o.detector] += 1
        return {k: found[k] for k in KINDS if k in found}

    def harmless_reasons(self) -> Counter[str]:
        return Counter(o.reason for o in self.outcomes if o.verdict == HARMLESS)

    def undetected_descriptions(self) -> list[str]:
        return [o.describe() for o in self.outcomes if o.verdict == UNDETECTED]

    def crashes(self) -> list[str]:
        """Mutations refused by an exception outside ParcelProof's Error hierarchy."""
        return [o.describe() for o in self.outcomes if o.detector.startswith(CRASH)]

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "seconds": round(self.seconds, 1),
            "total": self.total,
            "detected": self.detected,
            "harmless": self.harmless,
            "undetected": self.undetected,
            "rechecks": self.rechecks,
            "chainReads": self.chain_reads,
            "byKind": self.by_kind(),
            "byTarget": self.by_target(),
            "byDetector": dict(self.by_detector().most_common()),
            "detectorsByKind": {
                k: dict(c.most_common()) for k, c in self.detectors_by_kind().items()
            },
            "harmlessReasons": dict(self.harmless_reasons().most_common()),
            "undetectedDescriptions": self.undetected_descriptions(),
            "crashes": self.crashes(),
            "outcomes": [dataclasses.asdict(o) for o in self.outcomes],
        }


def mutate(world: World, rng: random.Random, kind: str, *, recheck: bool = True) -> Outcome:
    """One random single-byte mutation of ``kind``, classified and undone."""
    if kind == "bundle":
        tracking_number = rng.choice(sorted(world.bundles))
        size = len(world.bundles[tracking_number].encode())
        return tamper_bundle(world, tracking_number, rng.randrange(size), rng.randrange(1, 256))
    cell = rng.choice(STORED[kind])
    rowid, value, label = rng.choice(_rows(world, cell))
    position, mask = rng.randrange(len(value)), rng.randrange(1, 256)
    return tamper_row(world, kind, cell, rowid, position, mask, label, recheck=recheck)


def run(
    seed: int,
    count: int,
    targets: Sequence[str] = KINDS,
    *,
    world: World | None = None,
    recheck_every: int = 1,
    progress: Callable[[int, Outcome], None] | None = None,
) -> Tally:
    """``count`` mutations drawn from ``random.Random(seed)``, spread evenly over ``targets``
    (each round of ``len(targets)`` mutations hits every kind once, in a shuffled order), each
    classified on ``world`` (a fresh one when None) and undone before the next.

    Every restore is proven by the database digest; every ``recheck_every``-th stored-row
    mutation (0: never) also re-verifies the restored world in full."""
    unknown = set(targets) - set(KINDS)
    if unknown or not targets:
        raise ValueError(f"unknown target kinds {sorted(unknown)}: choose from {KINDS}")
    if world is None:
        with open_world(seed) as fresh:
            return run(
                seed, count, targets, world=fresh, recheck_every=recheck_every, progress=progress
            )
    rng = random.Random(seed)
    order = list(targets)
    tally = Tally(seed)
    reads = world.ledger.chain_reads
    started = time.monotonic()
    stored = 0  # stored-row mutations so far
    for i in range(count):
        if i % len(order) == 0:
            rng.shuffle(order)
        kind = order[i % len(order)]
        recheck = kind != "bundle" and recheck_every > 0 and stored % recheck_every == 0
        stored += kind != "bundle"
        tally.outcomes.append(mutate(world, rng, kind, recheck=recheck))
        tally.rechecks += recheck
        if progress is not None:
            progress(i, tally.outcomes[-1])
    tally.seconds = time.monotonic() - started
    tally.chain_reads = world.ledger.chain_reads - reads
    world.ledger.check_frozen()
    if state_digest(world.engine) != world.state or observe(world) != world.baseline:
        raise RestoreError("after the run the world is not the untouched one")
    return tally
