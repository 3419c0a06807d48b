"""Fault-injection harness: a courier node as real processes, a bulk client, and the loss checks.

A :class:`System` runs the node the way operators do: ``parcelproof serve --no-worker`` and
``parcelproof anchor-worker`` as separate processes, on anvil and on SQLite or PostgreSQL,
set up by ``dev-setup``. A :class:`BulkClient` sends pre-signed events in bulk and remembers
which the node acknowledged; it retries a batch with the same event ids when the node did not
answer. :func:`check_no_loss` then proves that every acknowledged event is stored exactly
once, anchored in a confirmed checkpoint the chain holds, and verifies; and that nothing
unacknowledged is stored half.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from sqlalchemy import func, select

from parcelproof.chain.localnet import LocalDevnet
from parcelproof.core import merkle
from parcelproof.core.commitment import event_commitment
from parcelproof.core.eip712 import Domain
from parcelproof.service.agent import Agent
from parcelproof.service.lookup import lookup
from parcelproof.service.node import EventContext
from parcelproof.service.wiring import NodeRuntime, open_node
from parcelproof.settings import Settings, load_settings
from parcelproof.store.models import CheckpointRow, EventRow

STATUSES = ("departed", "arrived")
#: Seconds a process gets to print "listening on …" / start its loop.
START_TIMEOUT = 60.0


def _python() -> list[str]:
    return [sys.executable, "-m", "parcelproof"]


@dataclass
class Proc:
    """One node process, restartable; its output goes to a log file."""

    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    ready_line: str
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0
    kills: int = 0
    url: str = ""

    def start(self) -> None:
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts} ---\n".encode())
            log.flush()
            offset = self.log_path.stat().st_size
            self.popen = subprocess.Popen(
                [*_python(), *self.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            text = self.log_path.read_bytes()[offset:].decode(errors="replace")
            for line in text.splitlines():
                if line.startswith(self.ready_line):
                    self.url = line.split()[-1] if self.ready_line == "listening on" else ""
                    return
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start:\n{text[-2000:]}")
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start within {START_TIMEOUT}s")

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill9(self) -> None:
        """SIGKILL: no clean-up, no flush, exactly like a crash."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait()
            self.kills += 1

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


@dataclass
class System:
    """A courier node set up with ``dev-setup`` on ``rpc_url`` and ``database_url``."""

    workdir: Path
    rpc_url: str
    database_url: str
    anchor_interval: float | None = 0.5  # None: the node's default
    extra_env: dict[str, str] = field(default_factory=dict)  # more PARCELPROOF_* settings
    env_file: Path = field(init=False)
    settings: Settings = field(init=False)
    api: Proc = field(init=False)
    worker: Proc = field(init=False)

    def __post_init__(self) -> None:
        from parcelproof.cli import setup_dev_node

        self.workdir.mkdir(parents=True, exist_ok=True)
        self.env_file = self.workdir / "node.env"
        quiet = Console(file=io.StringIO())
        setup_dev_node(quiet, self.rpc_url, self.env_file, database_url=self.database_url)
        self.settings = load_settings(self.env_file)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("PARCELPROOF_")},
            "PARCELPROOF_LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }
        if self.anchor_interval is not None:
            env["PARCELPROOF_ANCHOR_INTERVAL_SECONDS"] = str(self.anchor_interval)
        common = ["--env-file", str(self.env_file)]
        self.api = Proc(
            "api",
            ["serve", "--no-worker", "--port", "0", *common],
            env,
            self.workdir / "api.log",
            "listening on",
        )
        self.worker = Proc(
            "worker", ["anchor-worker", *common], env, self.workdir / "worker.log", "anchoring"
        )

    @property
    def token(self) -> str:
        return _env_value(self.env_file, "API_TOKEN")

    def agent(self, rng: random.Random) -> Agent:
        key = bytes.fromhex(_env_value(self.env_file, "AGENT_KEY")[2:])
        return Agent(key, rng=rng.randbytes)

    def start(self) -> None:
        self.api.start()
        self.worker.start()

    def stop(self) -> None:
        self.api.stop()
        self.worker.stop()

    @contextlib.contextmanager
    def runtime(self) -> Iterator[NodeRuntime]:
        """The node's parts in this process (no worker thread), to inspect the outcome."""
        runtime = open_node(self.settings)
        try:
            yield runtime
        finally:
            runtime.close()


def _env_value(path: Path, name: str) -> str:
    for line in path.read_text().splitlines():
        if line.startswith(f"PARCELPROOF_{name}="):
            return line.split("=", 1)[1].strip("'")
    raise KeyError(name)


# --- the client -----------------------------------------------------------------------------


@dataclass
class Parcel:
    tracking_number: str
    postcode: str
    events: list[dict[str, Any]] = field(default_factory=list)


def make_parcels(
    system: System, client: httpx.Client, rng: random.Random, shipments: int, events: int
) -> list[Parcel]:
    """Create ``shipments`` parcels and pre-sign ``events`` events spread over them (each
    parcel's own hash chain, in order), all from the seeded ``rng``."""
    agent = system.agent(rng)
    auth = {"Authorization": f"Bearer {system.token}"}
    now = int(time.time())
    parcels: list[Parcel] = []
    for i in range(shipments):
        parcel = Parcel(f"PF{rng.randrange(10**9):09d}{i:04d}NL", f"{1000 + i % 9000} AB")
        r = client.post(
            "/v1/shipments",
            headers=auth,
            json={"tracking_number": parcel.tracking_number, "postcode": parcel.postcode},
        )
        r.raise_for_status()
        parcels.append(parcel)
    per = [events // shipments + (1 if i < events % shipments else 0) for i in range(shipments)]
    for parcel, count in zip(parcels, per, strict=True):
        r = client.post(
            "/v1/shipments/context", headers=auth, json={"tracking_number": parcel.tracking_number}
        )
        r.raise_for_status()
        c = r.json()
        domain = Domain(chain_id=c["chain_id"], verifying_contract=c["verifying_contract"])
        log_id, shipment = bytes.fromhex(c["log_id"][2:]), bytes.fromhex(c["shipment"][2:])
        previous = bytes.fromhex(c["previous"][2:])
        for seq in range(count):
            ctx = EventContext(domain, log_id, shipment, seq, previous)
            fields = {"status": "picked_up" if seq == 0 else STATUSES[seq % 2]}
            at = now  # the agent key is valid from set-up on; times may not go back
            openings, signature = agent.sign(ctx, fields, at)
            previous = event_commitment(
                log_id, shipment, seq, previous, [o.digest() for o in openings]
            )
            parcel.events.append(
                {
                    "event_id": f"{rng.getrandbits(64):016x}{seq:06d}",
                    "tracking_number": parcel.tracking_number,
                    "event_time": at,
                    "agent": agent.address,
                    "signature": "0x" + signature.hex(),
                    "fields": [o.to_json() for o in openings],
                }
            )
    return parcels


def interleave(parcels: list[Parcel], rng: random.Random) -> list[dict[str, Any]]:
    """All events in a random order that keeps each parcel's own order."""
    queues = [list(p.events) for p in parcels if p.events]
    out: list[dict[str, Any]] = []
    while queues:
        q = rng.choice(queues)
        out.append(q.pop(0))
        if not q:
            queues.remove(q)
    return out


@dataclass
class IngestStats:
    batches: int = 0
    retries: int = 0
    acknowledged: set[str] = field(default_factory=set)
    replays: int = 0
    refused: list[str] = field(default_factory=list)
    unavailable: Counter[str] = field(default_factory=Counter)
    seconds: dict[str, float] = field(default_factory=dict)


class BulkClient:
    """Sends events in bulk batches; a batch without an answer is sent again, same ids."""

    def __init__(
        self, system: System, batch: int, timeout: float = 30.0, pace: float = 0.0
    ) -> None:
        self.system = system
        self.batch = batch
        self.timeout = timeout
        self.pace = pace  # seconds between batches (a steady stream instead of a flood)
        self.stats = IngestStats()
        self.answers: list[tuple[float, int, str, float]] = []  # (at, status, type, seconds)

    def run(
        self,
        events: list[dict[str, Any]],
        deadline: float,
        hold_last: Callable[[], bool] | None = None,
    ) -> IngestStats:
        """Send ``events``; with ``hold_last``, the last batch waits until it says True (so a
        slow machine still sees the chaos it is meant to, however long restarts take)."""
        auth = {"Authorization": f"Bearer {self.system.token}"}
        i = 0
        while i < len(events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"ingest did not finish: {i} of {len(events)} sent")
            if hold_last is not None and i + self.batch >= len(events) and not hold_last():
                time.sleep(0.1)
                continue
            chunk = events[i : i + self.batch]
            url = self.system.api.url
            sent_at = time.monotonic()
            try:
                r = httpx.post(
                    f"{url}/v1/events/bulk",
                    headers=auth,
                    json={"events": chunk},
                    timeout=self.timeout,
                )
                kind = r.headers.get("content-type", "")
                self.answers.append((sent_at, r.status_code, kind, time.monotonic() - sent_at))
            except httpx.HTTPError as e:
                self.stats.unavailable[type(e).__name__] += 1
                self.stats.retries += 1
                time.sleep(0.05)
                continue
            if r.status_code != 200:
                self.stats.unavailable[f"HTTP {r.status_code}"] += 1
                self.stats.retries += 1
                time.sleep(0.05)
                continue
            results = r.json()["results"]
            for item, event in zip(results, chunk, strict=True):
                if item["status"] in (200, 201):
                    self.stats.acknowledged.add(event["event_id"])
                    self.stats.replays += item["status"] == 200
                else:
                    self.stats.refused.append(f"{event['event_id']}: {item}")
            self.stats.batches += 1
            i += len(chunk)
            if self.pace:
                time.sleep(self.pace)
        return self.stats

    def run_in_thread(self, events: list[dict[str, Any]], deadline: float) -> Callable[[], None]:
        """Start :meth:`run` in a thread; returns a join that re-raises its failure."""
        failure: list[BaseException] = []

        def target() -> None:
            try:
                self.run(events, deadline)
            except BaseException as e:
                failure.append(e)

        thread = threading.Thread(target=target, name="bulk-client", daemon=True)
        thread.start()

        def join() -> None:
            thread.join()
            if failure:
                raise failure[0]

        return join

    def wait_for(self, acknowledged: int, timeout: float = 120.0) -> None:
        """Wait until at least ``acknowledged`` events were acknowledged."""
        deadline = time.monotonic() + timeout
        while len(self.stats.acknowledged) < acknowledged:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(self.stats.acknowledged)} acknowledged")
            time.sleep(0.05)


class Chaos:
    """A seeded thread that kill -9s the API, the worker or both at random moments and
    restarts them after a random pause."""

    def __init__(
        self,
        system: System,
        rng: random.Random,
        *,
        every: tuple[float, float] = (0.5, 2.5),
        pause: tuple[float, float] = (0.0, 0.5),
    ) -> None:
        self.system, self.rng, self.every, self.pause = system, rng, every, pause
        self.kills: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos", daemon=True)
        self.error: BaseException | None = None

    def __enter__(self) -> Chaos:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        for proc in (self.system.api, self.system.worker):
            if not proc.alive:
                proc.start()
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.rng.uniform(*self.every)):
                target = self.rng.choice(("api", "worker", "both"))
                procs = {
                    "api": [self.system.api],
                    "worker": [self.system.worker],
                    "both": [self.system.api, self.system.worker],
                }[target]
                for proc in procs:
                    proc.kill9()
                self.kills[target] += 1
                time.sleep(self.rng.uniform(*self.pause))
                for proc in procs:
                    proc.start()
        except BaseException as e:  # reported by __exit__
            self.error = e


# --- the checks -----------------------------------------------------------------------------


@dataclass
class Outcome:
    """What :func:`check_no_loss` measured."""

    sent: int
    acknowledged: int
    stored: int
    stored_unacknowledged: int
    lost: int
    duplicates: int
    anchored_size: int
    checkpoints_on_chain: int
    verified_events: int
    parcels_verified: int


def wait_until_anchored(system: System, timeout: float) -> int:
    """Wait until a confirmed checkpoint covers the whole log; its size."""
    deadline = time.monotonic() + timeout
    with system.runtime() as rt:
        while True:
            size = rt.store.log_size()
            confirmed = rt.store.checkpoints("confirmed")
            if size and confirmed and confirmed[-1].size == size:
                return size
            if time.monotonic() > deadline:
                top = confirmed[-1].size if confirmed else 0
                raise AssertionError(f"not anchored in {timeout}s: log {size}, confirmed {top}")
            time.sleep(0.2)


def check_no_loss(
    system: System, parcels: list[Parcel], stats: IngestStats, *, verify_every: int = 1
) -> Outcome:
    """Prove nothing acknowledged was lost, nothing stored twice or half, all anchored.

    ``verify_every`` verifies the bundle of every n-th parcel against the chain (1: all).
    """
    sent = {e["event_id"]: e for p in parcels for e in p.events}
    with system.runtime() as rt:
        store, ledger, log_id = rt.store, rt.ledger, rt.node.courier_id
        with rt.engine.connect() as s:  # the raw rows
            rows = s.execute(
                select(
                    EventRow.event_id, EventRow.shipment_id, EventRow.sequence, EventRow.leaf_index
                ).where(EventRow.log_id == log_id)
            ).all()
            ids = [r.event_id for r in rows]
            dup_count = s.scalar(
                select(func.count()).select_from(
                    select(EventRow.event_id)
                    .where(EventRow.log_id == log_id)
                    .group_by(EventRow.event_id)
                    .having(func.count() > 1)
                    .subquery()
                )
            )
            local_cps = {
                c.size: bytes(c.root)
                for c in s.execute(
                    select(CheckpointRow.size, CheckpointRow.root, CheckpointRow.status).where(
                        CheckpointRow.log_id == log_id
                    )
                )
                if c.status != "sent"
            }
        stored = set(ids)
        # Exactly once: no id twice; nothing stored that the client never sent.
        assert len(ids) == len(stored), "an event id is stored twice"
        assert not (stored - sent.keys()), "the node holds events nobody sent"
        lost = stats.acknowledged - stored
        assert not lost, f"{len(lost)} acknowledged events are lost, e.g. {sorted(lost)[:3]}"
        # Nothing half-stored: the log holds exactly the stored events, leaves 0..n-1, and
        # each parcel's events are a gap-free prefix 0..k-1 of what the client sent.
        size = store.log_size()
        assert size == len(ids), f"log size {size} but {len(ids)} events"
        assert sorted(r.leaf_index for r in rows) == list(range(size)), "leaf indexes have gaps"
        by_shipment: dict[Any, list[int]] = {}
        for r in rows:
            by_shipment.setdefault(r.shipment_id, []).append(r.sequence)
        for seqs in by_shipment.values():
            assert sorted(seqs) == list(range(len(seqs))), "a parcel's sequence has a gap"
        for p in parcels:
            prefix = [e["event_id"] for e in p.events if e["event_id"] in stored]
            assert prefix == [e["event_id"] for e in p.events[: len(prefix)]], (
                f"{p.tracking_number}: stored events are not a prefix of those sent"
            )
        # Anchored: the chain's checkpoints grow, none skipped or doubled, each one is a
        # checkpoint this node recorded with the same root, and the last covers the log.
        on_chain = ledger.checkpoints(rt.node.courier_id)
        sizes = [c.size for c in on_chain]
        assert sizes == sorted(set(sizes)), f"chain checkpoints not strictly growing: {sizes}"
        for c in on_chain:
            assert local_cps.get(c.size) == c.root, f"checkpoint {c.size} unknown locally"
            assert merkle.tree_root(store.node, c.size) == c.root, f"root {c.size} differs"
        assert set(local_cps) == set(sizes), "a local checkpoint is not on chain"
        assert sizes and sizes[-1] == size, f"last checkpoint {sizes[-1:]} != log size {size}"
        # Verifies: each parcel's bundle against the chain, every event confirmed.
        verified = parcels_verified = 0
        for i, p in enumerate(parcels):
            if i % verify_every or not any(e["event_id"] in stored for e in p.events):
                continue
            result = lookup([rt.node], ledger, p.tracking_number, p.postcode)
            report = result.report
            assert report is not None, f"{p.tracking_number}: no report"
            assert report.ok, f"{p.tracking_number}: {[c.detail for c in report.failures]}"
            states = {t.anchoring for t in result.timeline}
            assert states == {"confirmed"}, f"{p.tracking_number}: {states}"
            verified += len(result.timeline)
            parcels_verified += 1
    return Outcome(
        sent=len(sent),
        acknowledged=len(stats.acknowledged),
        stored=len(stored),
        stored_unacknowledged=len(stored - stats.acknowledged),
        lost=len(lost),
        duplicates=int(dup_count or 0),
        anchored_size=size,
        checkpoints_on_chain=len(on_chain),
        verified_events=verified,
        parcels_verified=parcels_verified,
    )


def kill9_round(
    system_factory: Callable[[], System],
    seed: int,
    *,
    events: int,
    shipments: int,
    batch: int,
    every: tuple[float, float] = (0.5, 2.5),
    pace: float = 0.0,
    verify_every: int = 1,
    timeout: float = 900.0,
    until: Callable[[Counter[str]], bool] | None = None,
) -> tuple[Outcome, IngestStats, Counter[str]]:
    """One seeded round: set up, ingest under kill -9 chaos, then check nothing was lost.
    ``until``: the last batch is held until the chaos's kills satisfy it."""
    rng = random.Random(seed)
    t0 = time.monotonic()
    system = system_factory()
    system.start()
    try:
        with httpx.Client(base_url=system.api.url, timeout=30.0) as client:
            parcels = make_parcels(system, client, rng, shipments, events)
        ordered = interleave(parcels, rng)
        bulk = BulkClient(system, batch, pace=pace)
        t1 = time.monotonic()
        with Chaos(system, random.Random(rng.getrandbits(64)), every=every) as chaos:
            held = None if until is None else (lambda: until(chaos.kills))
            stats = bulk.run(ordered, time.monotonic() + timeout, hold_last=held)
        t2 = time.monotonic()
        assert not stats.refused, f"the node refused events: {stats.refused[:3]}"
        wait_until_anchored(system, timeout=120.0)
        t3 = time.monotonic()
        outcome = check_no_loss(system, parcels, stats, verify_every=verify_every)
        stats.seconds = {
            "setup": t1 - t0,
            "ingest": t2 - t1,
            "anchor": t3 - t2,
            "check": time.monotonic() - t3,
        }
        return outcome, stats, chaos.kills
    finally:
        system.stop()


# --- a chain outage -------------------------------------------------------------------------


def chain_outage_round(
    devnet: LocalDevnet, workdir: Path, database_url: str, *, outage: float, seed: int = 3
) -> dict[str, float]:
    """Stop the chain for ``outage`` seconds during a steady ingest; figures of the round."""
    url = devnet.status().url or ""
    system = System(workdir, url, database_url)
    system.start()
    try:
        rng = random.Random(seed)
        with httpx.Client(base_url=system.api.url, timeout=30.0) as client:
            parcels = make_parcels(system, client, rng, 6, 600)
        # 60 batches paced to outlast the outage: part of the ingest happens while it lasts.
        bulk = BulkClient(system, batch=10, pace=(outage + 20) / 60)
        join = bulk.run_in_thread(interleave(parcels, rng), time.monotonic() + 600)
        bulk.wait_for(100)
        wait_until_anchored_some(system)
        devnet.down()
        stopped = time.monotonic()
        before = len(bulk.stats.acknowledged)
        time.sleep(outage)
        during = len(bulk.stats.acknowledged) - before
        devnet.up()
        restarted = time.monotonic()
        caught_up = wait_until_confirmed(system, backlog=len(bulk.stats.acknowledged)) - restarted
        join()
        wait_until_anchored(system, timeout=outage + 120)
        assert system.api.starts == 1 and system.worker.starts == 1, "a process was restarted"
        assert system.api.alive and system.worker.alive
        outcome = check_no_loss(system, parcels, bulk.stats)
        assert outcome.lost == 0 and outcome.acknowledged == outcome.sent
        return {
            "outage_s": restarted - stopped,
            "acknowledged_during_outage": during,
            "catch_up_s": caught_up,
            "checkpoints": outcome.checkpoints_on_chain,
            "events": outcome.stored,
        }
    finally:
        system.stop()


def wait_until_confirmed(system: System, backlog: int, timeout: float = 180.0) -> float:
    """When a confirmed checkpoint first covered ``backlog`` events (monotonic time)."""
    deadline = time.monotonic() + timeout
    with system.runtime() as rt:
        while True:
            confirmed = rt.store.checkpoints("confirmed")
            if confirmed and confirmed[-1].size >= backlog:
                return time.monotonic()
            if time.monotonic() > deadline:
                raise TimeoutError(f"the backlog of {backlog} events was not anchored")
            time.sleep(0.1)


def wait_until_anchored_some(system: System, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    with system.runtime() as rt:
        while not rt.store.checkpoints("confirmed"):
            if time.monotonic() > deadline:
                raise TimeoutError("nothing anchored before the outage")
            time.sleep(0.1)
