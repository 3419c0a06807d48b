"""Soak: a bounded loopback load of ingest and lookups on a courier node, with latency and RSS.

A throw-away anvil and a :class:`tests.faults.harness.System` (``parcelproof serve
--no-worker`` and ``parcelproof anchor-worker`` as real processes, SQLite or a fresh PostgreSQL
schema) take a paced, mixed load from a few client threads for ``--duration`` seconds:
shipment creation, single events (``POST /v1/events``), small bulk batches
(``POST /v1/events/bulk``) and customer lookups (``POST /v1/lookup`` with the postcode) of
parcels that already have events. Every request's latency and status is recorded, and the
API's and the worker's RSS is sampled every ~2 s. At the end the worker must anchor every
acknowledged event, and a sample of lookups must verify against the chain.

The node limits lookups to 60 a minute per client address and 10 a minute per parcel
(``parcelproof.api.ratelimit.PublicLimits``: fixed defaults, no setting). One loopback client
therefore paces its lookups itself (``--lookups-per-minute``, 50 by default) and spreads them
over parcels: a lookup slot of the mix that would exceed that budget is skipped and counted,
and a 429 the node still answers is counted as "rate-limited", apart from the errors.

    .venv/bin/python scripts/soak.py [--duration 300] [--database sqlite|postgresql]
        [--rate 10] [--seed 1] [--json figures.json]

Exit status 1 on any error (a non-2xx answer other than 429, a transport failure, a refused
bulk item, a lookup missing acknowledged events or failing verification, events left
unanchored) or when the memory of either process is not flat.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import secrets
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table
from sqlalchemy import text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python scripts/soak.py`: the harness is tests.faults
    sys.path.insert(0, str(ROOT))

from tests.faults.harness import System, wait_until_anchored  # noqa: E402

from parcelproof.chain.devnet import Anvil  # noqa: E402
from parcelproof.core.commitment import event_commitment  # noqa: E402
from parcelproof.core.eip712 import Domain  # noqa: E402
from parcelproof.service.agent import Agent  # noqa: E402
from parcelproof.service.node import EventContext  # noqa: E402
from parcelproof.store.db import make_engine  # noqa: E402

#: Weights of the operation mix (per paced slot): 50% events (half single, half bulk),
#: 10% shipment creation, 40% customer lookups.
MIX: dict[str, int] = {"event": 25, "bulk": 25, "shipment": 10, "lookup": 40}
#: Operation rows of the report, in order ("context" follows each shipment creation).
OPERATIONS = ("shipment", "context", "event", "bulk", "lookup")
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
#: The node's fixed public limits (``PublicLimits`` defaults): per client, per parcel, a minute.
NODE_LOOKUPS_PER_MINUTE = 60
NODE_LOOKUPS_PER_PARCEL = 10
#: What this client allows itself per parcel (a margin under the node's 10).
PARCEL_LOOKUPS_PER_MINUTE = 8
#: Events per parcel from pick-up to delivery (inclusive bounds).
LIFECYCLE = (6, 24)
MIB = 1024 * 1024


@dataclass
class SoakConfig:
    """What to run: length, database, pace, seed and the thresholds of the verdict."""

    duration: float = 300.0
    database: str = "sqlite"
    rate: float = 10.0
    seed: int = 1
    threads: int = 6
    lookups_per_minute: int = 50
    warmup: float | None = None  # None: 30 s or 10% of the duration, whichever is shorter
    sample_interval: float = 2.0
    anchor_interval: float = 1.0
    verify_sample: int = 10
    initial_parcels: int = 8
    max_growth_pct: float = 10.0
    pg_url: str = PG_URL
    workdir: Path | None = None

    @property
    def warmup_seconds(self) -> float:
        return self.warmup if self.warmup is not None else min(30.0, 0.1 * self.duration)


def _seeded(seed: int) -> random.Random:
    return random.Random(seed)  # noqa: S311 - a reproducible load, not cryptography


# --- recording ------------------------------------------------------------------------------


@dataclass
class Sample:
    """One request: operation, start (seconds since the load began), latency, status, and
    its size in events (sent for event and bulk, answered for a lookup)."""

    op: str
    at: float
    seconds: float
    status: int  # HTTP status, 0 for a transport failure
    size: int = 0


class Recorder:
    """Every request's latency and status, the errors, and the slots not run (thread-safe)."""

    def __init__(self) -> None:
        self.samples: list[Sample] = []
        self.errors: Counter[str] = Counter()
        self.examples: list[str] = []
        self.skipped: Counter[str] = Counter()
        self.events_acknowledged = 0
        self.verification: Counter[str] = Counter()
        self.t0 = time.monotonic()
        self._lock = threading.Lock()

    def request(self, op: str, started: float, seconds: float, status: int, size: int) -> Sample:
        sample = Sample(op, started - self.t0, seconds, status, size)
        with self._lock:
            self.samples.append(sample)
        return sample

    def error(self, kind: str, detail: str) -> None:
        with self._lock:
            self.errors[kind] += 1
            if len(self.examples) < 10:
                self.examples.append(f"{kind}: {detail[:300]}")

    def skip(self, reason: str) -> None:
        with self._lock:
            self.skipped[reason] += 1

    def acknowledged(self, n: int) -> None:
        with self._lock:
            self.events_acknowledged += n

    def verified(self, state: str) -> None:
        with self._lock:
            self.verification[state] += 1


def post(
    client: httpx.Client, rec: Recorder, op: str, path: str, body: dict[str, Any], size: int = 0
) -> tuple[httpx.Response | None, Sample]:
    """POST and record; a transport failure or an unexpected status is an error (no response
    back). A 429 is recorded as rate-limited, not as an error, and gives no response either."""
    started = time.monotonic()
    try:
        r = client.post(path, json=body)
    except httpx.HTTPError as e:
        sample = rec.request(op, started, time.monotonic() - started, 0, size)
        rec.error(f"{op}: {type(e).__name__}", str(e))
        return None, sample
    sample = rec.request(op, started, time.monotonic() - started, r.status_code, size)
    if r.status_code == 429:
        return None, sample
    if not 200 <= r.status_code < 300:
        rec.error(f"{op}: HTTP {r.status_code}", r.text)
        return None, sample
    return r, sample


# --- the client's parcels -------------------------------------------------------------------


@dataclass
class SoakParcel:
    """A shipment this client created: the hash-chain state to sign its next event with."""

    tracking_number: str
    postcode: str
    domain: Domain
    log_id: bytes
    shipment: bytes
    previous: bytes
    lifecycle: int  # events from pick-up to delivery
    sequence: int = 0  # acknowledged events
    last_time: int = 0
    busy: bool = False
    broken: bool = False  # an ingest failed half-way: its chain state is unknown, left alone
    lookups: deque[float] = field(default_factory=deque)

    @property
    def open(self) -> bool:
        return not self.busy and not self.broken and self.sequence < self.lifecycle

    def status(self, seq: int) -> str:
        if seq == 0:
            return "picked_up"
        if seq == self.lifecycle - 1:
            return "delivered"
        if seq == self.lifecycle - 2:
            return "out_for_delivery"
        return ("departed", "arrived")[(seq - 1) % 2]


class ParcelBook:
    """The parcels, who is sending events for which, and the client's own lookup budget
    (``per_minute`` lookups evenly spaced, at most 8 a minute per parcel)."""

    def __init__(self, rng: random.Random, per_minute: int) -> None:
        self.parcels: list[SoakParcel] = []
        self.rng = rng
        self.min_gap = 60.0 / per_minute
        self.last_lookup = -math.inf
        self.lookups: deque[float] = deque()
        self.per_minute = per_minute
        self._lock = threading.Lock()
        self._counter = 0
        self.tag = f"{rng.randrange(10**6):06d}"

    def new_number(self) -> tuple[str, str]:
        with self._lock:
            self._counter += 1
            n = self._counter
        return f"SK{self.tag}{n:07d}NL", f"{1000 + n % 9000} {'ABCDEFGH'[n % 8]}X"

    def add(self, parcel: SoakParcel) -> None:
        with self._lock:
            self.parcels.append(parcel)

    def take(self, count: int) -> list[SoakParcel]:
        """Up to ``count`` open parcels, marked busy for the caller."""
        with self._lock:
            free = [p for p in self.parcels if p.open]
            chosen = self.rng.sample(free, min(count, len(free)))
            for p in chosen:
                p.busy = True
            return chosen

    def release(self, parcels: Sequence[SoakParcel]) -> None:
        with self._lock:
            for p in parcels:
                p.busy = False

    def lookup_target(self, exclude: set[str] | None = None) -> tuple[SoakParcel, int] | None:
        """A parcel with events to look up now within the budget, and its acknowledged count;
        None when the budget has no room."""
        with self._lock:
            now = time.monotonic()
            while self.lookups and self.lookups[0] < now - 60.0:
                self.lookups.popleft()
            if now - self.last_lookup < self.min_gap or len(self.lookups) >= self.per_minute:
                return None
            candidates = []
            for p in self.parcels:
                while p.lookups and p.lookups[0] < now - 60.0:
                    p.lookups.popleft()
                if exclude and p.tracking_number in exclude:
                    continue
                if p.sequence and not p.broken and len(p.lookups) < PARCEL_LOOKUPS_PER_MINUTE:
                    candidates.append(p)
            if not candidates:
                return None
            parcel = self.rng.choice(candidates)
            self.last_lookup = now
            self.lookups.append(now)
            parcel.lookups.append(now)
            return parcel, parcel.sequence

    def wait_for_lookup(
        self, timeout: float, exclude: set[str] | None = None
    ) -> tuple[SoakParcel, int] | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            target = self.lookup_target(exclude)
            if target is not None:
                return target
            time.sleep(0.05)
        return None


# --- the operations -------------------------------------------------------------------------


@dataclass
class Client:
    """One load thread's connection, signing device and randomness."""

    http: httpx.Client
    agent: Agent
    rng: random.Random
    book: ParcelBook
    rec: Recorder


def create_shipment(c: Client) -> SoakParcel | None:
    """``POST /v1/shipments``, then ``/v1/shipments/context`` for the hash chain's start."""
    number, postcode = c.book.new_number()
    details = {"weight_g": c.rng.randrange(100, 20_000), "service": "standard"}
    body = {"tracking_number": number, "postcode": postcode, "details": details}
    if post(c.http, c.rec, "shipment", "/v1/shipments", body)[0] is None:
        return None
    r, _ = post(c.http, c.rec, "context", "/v1/shipments/context", {"tracking_number": number})
    if r is None:
        return None
    ctx = r.json()
    parcel = SoakParcel(
        tracking_number=number,
        postcode=postcode,
        domain=Domain(chain_id=ctx["chain_id"], verifying_contract=ctx["verifying_contract"]),
        log_id=bytes.fromhex(ctx["log_id"][2:]),
        shipment=bytes.fromhex(ctx["shipment"][2:]),
        previous=bytes.fromhex(ctx["previous"][2:]),
        lifecycle=c.rng.randint(*LIFECYCLE),
    )
    c.book.add(parcel)
    return parcel


def sign_events(c: Client, parcel: SoakParcel, count: int) -> tuple[list[dict[str, Any]], bytes]:
    """The parcel's next ``count`` events, signed (as ``make_parcels`` in the harness does),
    and the commitment after the last; the parcel itself advances only once acknowledged."""
    events: list[dict[str, Any]] = []
    previous = parcel.previous
    at = max(int(time.time()), parcel.last_time)  # event times never go back
    for seq in range(parcel.sequence, parcel.sequence + count):
        ctx = EventContext(parcel.domain, parcel.log_id, parcel.shipment, seq, previous)
        openings, signature = c.agent.sign(ctx, {"status": parcel.status(seq)}, at)
        previous = event_commitment(
            parcel.log_id, parcel.shipment, seq, previous, [o.digest() for o in openings]
        )
        events.append(
            {
                "event_id": f"{c.rng.getrandbits(64):016x}{seq:06d}",
                "tracking_number": parcel.tracking_number,
                "event_time": at,
                "agent": c.agent.address,
                "signature": "0x" + signature.hex(),
                "fields": [o.to_json() for o in openings],
            }
        )
    return events, previous


def _advance(parcel: SoakParcel, count: int, previous: bytes, at: int) -> None:
    parcel.sequence += count
    parcel.previous = previous
    parcel.last_time = at


def record_single(c: Client) -> None:
    """One event of an open parcel through ``POST /v1/events`` (201 expected)."""
    taken = c.book.take(1)
    if not taken:  # every parcel delivered or busy: a new one comes in instead
        c.rec.skip("event slot -> shipment (no open parcel)")
        create_shipment(c)
        return
    parcel = taken[0]
    try:
        events, previous = sign_events(c, parcel, 1)
        r, _ = post(c.http, c.rec, "event", "/v1/events", events[0], 1)
        if r is None or r.status_code != 201:
            if r is not None:
                c.rec.error("event: not 201", f"{r.status_code} {r.text}")
            parcel.broken = True
            return
        _advance(parcel, 1, previous, events[0]["event_time"])
        c.rec.acknowledged(1)
    finally:
        c.book.release(taken)


def record_bulk(c: Client) -> None:
    """Events of 1-3 open parcels (1-3 each, in order) through ``POST /v1/events/bulk``."""
    taken = c.book.take(c.rng.randint(1, 3))
    if not taken:
        c.rec.skip("bulk slot -> shipment (no open parcel)")
        create_shipment(c)
        return
    try:
        batch: list[dict[str, Any]] = []
        plan: list[tuple[SoakParcel, int, bytes, int]] = []  # parcel, count, previous, time
        for parcel in taken:
            count = min(c.rng.randint(1, 3), parcel.lifecycle - parcel.sequence)
            events, previous = sign_events(c, parcel, count)
            batch += events
            plan.append((parcel, count, previous, events[-1]["event_time"]))
        r, _ = post(c.http, c.rec, "bulk", "/v1/events/bulk", {"events": batch}, len(batch))
        if r is None:
            for parcel, *_ in plan:
                parcel.broken = True
            return
        results = r.json()["results"]
        refused = [item for item in results if item["status"] != 201]
        if len(results) != len(batch) or refused:
            c.rec.error("bulk: item refused", json.dumps(refused[:2] or results)[:300])
            for parcel, *_ in plan:
                parcel.broken = True
            return
        for parcel, count, previous, at in plan:
            _advance(parcel, count, previous, at)
        c.rec.acknowledged(len(batch))
    finally:
        c.book.release(taken)


def check_lookup(
    c: Client, parcel: SoakParcel, acknowledged: int, *, final: bool = False
) -> bool | None:
    """``POST /v1/lookup`` with the postcode. The timeline must hold every event acknowledged
    before the call; a verification present must be ok (``final``: present, ok, and every
    event confirmed). True when verified against the chain; None when rate-limited or failed."""
    op = "final-lookup" if final else "lookup"
    body = {"tracking_number": parcel.tracking_number, "postcode": parcel.postcode}
    r, sample = post(c.http, c.rec, op, "/v1/lookup", body)
    if r is None:
        return None
    answer = r.json()
    timeline, verification = answer["timeline"], answer["verification"]
    sample.size = len(timeline)
    if len(timeline) < acknowledged:
        c.rec.error(f"{op}: events missing", f"{len(timeline)} of {acknowledged} acknowledged")
        return None
    if final:
        states = {t["anchoring"] for t in timeline}
        if len(timeline) != acknowledged or states != {"confirmed"}:
            c.rec.error(f"{op}: not all confirmed", f"{len(timeline)}/{acknowledged} {states}")
            return None
    if verification is None:
        if final:
            c.rec.error(f"{op}: no verification", parcel.tracking_number)
        c.rec.verified("none yet (nothing anchored)")
        return None
    if not verification["ok"]:
        failed = [ch for ch in verification["checks"] if not ch["ok"]]
        c.rec.error(f"{op}: verification failed", json.dumps(failed[:2]))
        return None
    c.rec.verified("ok (complete)" if verification["complete"] else "ok (partly anchored)")
    return True


def do_lookup(c: Client) -> None:
    target = c.book.lookup_target()
    if target is None:
        c.rec.skip("lookup: client-side budget (node limit 60/min per client)")
        return
    check_lookup(c, *target)


# --- pacing and the load threads ------------------------------------------------------------


class Pacer:
    """Slots at ``rate`` a second until ``end``, each with an operation from the mix. A slot
    more than ``max_lag`` seconds late (every thread busy) is dropped and counted."""

    def __init__(
        self, rate: float, start: float, end: float, rng: random.Random, max_lag: float = 1.0
    ) -> None:
        self.interval = 1.0 / rate
        self.next = start
        self.end = end
        self.rng = rng
        self.max_lag = max_lag
        self.dropped = 0
        self._ops = list(MIX)
        self._weights = list(MIX.values())
        self._lock = threading.Lock()

    def slot(self) -> str | None:
        with self._lock:
            now = time.monotonic()
            if self.next < now - self.max_lag:
                late = int((now - self.next) / self.interval)
                self.dropped += late
                self.next += late * self.interval
            at = self.next
            if at >= self.end:
                return None
            self.next += self.interval
            op = self.rng.choices(self._ops, self._weights)[0]
        time.sleep(max(0.0, at - time.monotonic()))
        return op


def load_thread(c: Client, pacer: Pacer, failures: list[BaseException]) -> None:
    try:
        while (op := pacer.slot()) is not None:
            if op == "shipment":
                create_shipment(c)
            elif op == "event":
                record_single(c)
            elif op == "bulk":
                record_bulk(c)
            else:
                do_lookup(c)
    except BaseException as e:  # reported by the caller
        failures.append(e)


class MemorySampler:
    """VmRSS of named processes from /proc/<pid>/status every ``interval`` seconds, and
    their CPU seconds (/proc/<pid>/stat) at the start and the end."""

    def __init__(self, pids: dict[str, int], t0: float, interval: float) -> None:
        self.pids, self.t0, self.interval = pids, t0, interval
        self.samples: dict[str, list[tuple[float, float]]] = {name: [] for name in pids}
        self.gone: list[str] = []
        self.cpu: dict[str, list[float]] = {name: [] for name in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> MemorySampler:
        self._cpu()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()  # the end of the load
        self._cpu()

    def _cpu(self) -> None:
        for name, pid in self.pids.items():
            seconds = cpu_seconds(pid)
            if seconds is not None:
                self.cpu[name].append(seconds)

    def cpu_percent(self, name: str, seconds: float) -> float:
        """Mean CPU use of ``name`` over the load, in % of one core."""
        spent = self.cpu[name]
        return 100.0 * (spent[-1] - spent[0]) / seconds if len(spent) == 2 and seconds else 0.0

    def sample(self) -> None:
        at = time.monotonic() - self.t0
        for name, pid in self.pids.items():
            rss = rss_mib(pid)
            if rss is None:
                if name not in self.gone:
                    self.gone.append(name)
                continue
            self.samples[name].append((at, rss))

    def _run(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.interval):
                return


def rss_mib(pid: int) -> float | None:
    """The resident set size of ``pid`` in MiB; None when the process is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024  # kB
    return None


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU seconds ``pid`` has used; None when the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- figures --------------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of ascending values."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


def latency_figures(rec: Recorder, duration: float) -> dict[str, dict[str, Any]]:
    """Per operation (and all): count, ok, rate-limited, errors, rate, p50/p95/p99/max ms."""
    by_op: dict[str, list[Sample]] = {}
    for s in rec.samples:
        by_op.setdefault(s.op, []).append(s)
    by_op["all (load)"] = [s for s in rec.samples if s.op in OPERATIONS]
    out: dict[str, dict[str, Any]] = {}
    for op in [*OPERATIONS, "final-lookup", "all (load)"]:
        samples = by_op.get(op, [])
        ms = sorted(s.seconds * 1000.0 for s in samples)
        out[op] = {
            "count": len(samples),
            "ok": sum(200 <= s.status < 300 for s in samples),
            "rate_limited": sum(s.status == 429 for s in samples),
            "errors": sum(not (200 <= s.status < 300 or s.status == 429) for s in samples),
            "per_second": len(samples) / duration if op != "final-lookup" else math.nan,
            "p50_ms": percentile(ms, 50),
            "p95_ms": percentile(ms, 95),
            "p99_ms": percentile(ms, 99),
            "max_ms": ms[-1] if ms else math.nan,
            "events_mean": sum(s.size for s in samples) / len(samples) if samples else 0.0,
        }
    return out


def trend_figures(
    rec: Recorder, memory: dict[str, list[tuple[float, float]]], bucket: float = 60.0
) -> list[dict[str, Any]]:
    """Per ``bucket`` seconds of load: requests, p50/p95 of events, bulks and lookups, the
    lookups' mean timeline length, and each process's RSS at the bucket's end."""
    rows: list[dict[str, Any]] = []
    last = max((s.at for s in rec.samples if s.op in OPERATIONS), default=0.0)
    for i in range(int(last // bucket) + 1):
        lo, hi = i * bucket, (i + 1) * bucket
        window = [s for s in rec.samples if s.op in OPERATIONS and lo <= s.at < hi]
        row: dict[str, Any] = {"from_s": lo, "requests": len(window)}
        for op in ("event", "bulk", "lookup"):
            ms = sorted(s.seconds * 1000.0 for s in window if s.op == op)
            row[f"{op}_p50_ms"] = percentile(ms, 50)
            row[f"{op}_p95_ms"] = percentile(ms, 95)
        sizes = [s.size for s in window if s.op == "lookup"]
        row["lookup_events_mean"] = sum(sizes) / len(sizes) if sizes else math.nan
        for name, samples in memory.items():
            inside = [m for t, m in samples if t < hi]
            row[f"{name}_rss_mib"] = inside[-1] if inside else math.nan
        rows.append(row)
    return rows


def memory_figures(
    samples: Sequence[tuple[float, float]], warmup: float, max_growth_pct: float
) -> dict[str, Any]:
    """RSS after the warm-up (start), at the end, its max, growth and least-squares slope;
    flat when both the end-to-start growth and the fitted growth over the window are under
    ``max_growth_pct`` of the start."""
    post = [(t, m) for t, m in samples if t >= warmup] or list(samples[-1:])
    if not post:
        return {"samples": 0, "flat": False}
    (t_start, start), (t_end, end) = post[0], post[-1]
    minutes = (t_end - t_start) / 60.0
    slope = 0.0
    if len(post) >= 2:
        mean_t = sum(t for t, _ in post) / len(post)
        mean_m = sum(m for _, m in post) / len(post)
        var = sum((t - mean_t) ** 2 for t, _ in post)
        cov = sum((t - mean_t) * (m - mean_m) for t, m in post)
        slope = cov / var * 60.0 if var else 0.0  # MiB per minute
    growth = end - start
    growth_pct = 100.0 * growth / start if start else math.inf
    fitted_pct = 100.0 * slope * minutes / start if start else math.inf
    return {
        "samples": len(samples),
        "samples_after_warmup": len(post),
        "window_s": t_end - t_start,
        "start_mib": start,
        "end_mib": end,
        "max_mib": max(m for _, m in post),
        "max_overall_mib": max(m for _, m in samples),
        "growth_mib": growth,
        "growth_pct": growth_pct,
        "slope_mib_per_min": slope,
        "fitted_growth_pct": fitted_pct,
        "flat": growth_pct < max_growth_pct and fitted_pct < max_growth_pct,
    }


@dataclass
class SoakResult:
    """The figures of a run and its verdict."""

    figures: dict[str, Any]
    errors: int
    flat: bool

    @property
    def ok(self) -> bool:
        return self.errors == 0 and self.flat


# --- the run --------------------------------------------------------------------------------


def with_search_path(url: str, schema: str) -> str:
    """``url`` whose connections resolve unqualified names in ``schema`` first."""
    parsed = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    return parsed.render_as_string(hide_password=False)


@contextlib.contextmanager
def database(cfg: SoakConfig, workdir: Path) -> Iterator[str]:
    """A fresh SQLite file, or a fresh PostgreSQL schema dropped afterwards; its URL."""
    if cfg.database == "sqlite":
        yield f"sqlite:///{workdir / 'parcelproof.sqlite'}"
        return
    if cfg.database != "postgresql":
        raise ValueError(f"unknown database {cfg.database!r}")
    schema = f"pp_soak_{secrets.token_hex(6)}"
    admin = make_engine(cfg.pg_url)
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            yield with_search_path(cfg.pg_url, schema)
        finally:
            with admin.begin() as connection:
                connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


def run_soak(cfg: SoakConfig, console: Console, rpc_url: str | None = None) -> SoakResult:
    """Set up anvil (unless ``rpc_url``), the node's processes and the database, run the
    load, wait for anchoring, verify a sample; the figures (printed too)."""
    with contextlib.ExitStack() as stack:
        if rpc_url is None:
            anvil = stack.enter_context(Anvil())
            rpc_url = anvil.url
        if cfg.workdir is not None:
            workdir = cfg.workdir
            workdir.mkdir(parents=True, exist_ok=True)
        else:
            workdir = Path(tempfile.mkdtemp(prefix="parcelproof-soak-"))
        db_url = stack.enter_context(database(cfg, workdir))
        console.print(f"[dim]anvil {rpc_url}, database {cfg.database}, workdir {workdir}[/]")
        system = System(workdir / "node", rpc_url, db_url, anchor_interval=cfg.anchor_interval)
        system.start()
        try:
            result = _run(cfg, console, system)
        finally:
            system.stop()
        exits = {
            p.name: p.popen.returncode if p.popen else None for p in (system.api, system.worker)
        }
        result.figures["process_exit_codes"] = exits
        if cfg.workdir is None:
            if result.ok:
                shutil.rmtree(workdir, ignore_errors=True)
            else:
                console.print(f"[yellow]kept the node's logs in {workdir / 'node'}[/]")
        return result


def _run(cfg: SoakConfig, console: Console, system: System) -> SoakResult:
    rng = _seeded(cfg.seed)
    rec = Recorder()
    book = ParcelBook(_seeded(rng.getrandbits(64)), cfg.lookups_per_minute)
    auth = {"Authorization": f"Bearer {system.token}"}
    clients: list[Client] = []
    for _ in range(cfg.threads):
        thread_rng = _seeded(rng.getrandbits(64))
        http = httpx.Client(base_url=system.api.url, headers=auth, timeout=30.0)
        clients.append(Client(http, system.agent(thread_rng), thread_rng, book, rec))
    try:
        # The first parcels, each with its pick-up, so lookups have targets from the start.
        setup = Recorder()
        seed_client = Client(clients[0].http, clients[0].agent, clients[0].rng, book, setup)
        for _ in range(cfg.initial_parcels):
            if create_shipment(seed_client) is not None:
                record_single(seed_client)
        if setup.errors:
            raise RuntimeError(f"setting up the first parcels failed: {setup.examples}")
        rec.events_acknowledged = setup.events_acknowledged

        pids = {"api": _pid(system.api.popen), "worker": _pid(system.worker.popen)}
        console.print(
            f"[bold]soak[/] {cfg.duration:.0f} s at {cfg.rate:g} slots/s, "
            f"{cfg.threads} threads, mix {MIX}, lookups ≤ {cfg.lookups_per_minute}/min; "
            f"api pid {pids['api']}, worker pid {pids['worker']}"
        )
        failures: list[BaseException] = []
        rec.t0 = start = time.monotonic()
        pacer = Pacer(cfg.rate, start, start + cfg.duration, _seeded(rng.getrandbits(64)))
        with MemorySampler(pids, start, cfg.sample_interval) as sampler:
            threads = [
                threading.Thread(target=load_thread, args=(c, pacer, failures), daemon=True)
                for c in clients
            ]
            for t in threads:
                t.start()
            _progress(console, rec, start, cfg.duration, threads)
            for t in threads:
                t.join()
        load_seconds = time.monotonic() - start
        if failures:
            raise failures[0]

        # Everything acknowledged must end up in a confirmed checkpoint; then a sample verifies.
        t_anchor = time.monotonic()
        anchored = 0
        try:
            anchored = wait_until_anchored(system, timeout=180.0)
        except AssertionError as e:
            rec.error("anchoring", str(e))
        anchor_wait = time.monotonic() - t_anchor
        if anchored != rec.events_acknowledged:
            rec.error("anchoring", f"log {anchored} != acknowledged {rec.events_acknowledged}")
        verified = _verify_sample(cfg, clients[0])
    finally:
        for c in clients:
            c.http.close()

    latencies = latency_figures(rec, load_seconds)
    memory = {
        name: memory_figures(s, cfg.warmup_seconds, cfg.max_growth_pct)
        for name, s in sampler.samples.items()
    }
    for name in sampler.gone:
        rec.error("process", f"{name} exited during the load")
    errors = sum(rec.errors.values())
    flat = all(m.get("flat", False) for m in memory.values())
    figures: dict[str, Any] = {
        "config": {
            "duration_s": cfg.duration,
            "database": cfg.database,
            "rate_slots_per_s": cfg.rate,
            "seed": cfg.seed,
            "threads": cfg.threads,
            "mix": MIX,
            "lookups_per_minute": cfg.lookups_per_minute,
            "warmup_s": cfg.warmup_seconds,
            "anchor_interval_s": cfg.anchor_interval,
            "max_growth_pct": cfg.max_growth_pct,
        },
        "load_seconds": load_seconds,
        "operations": latencies,
        "slots_dropped_late": pacer.dropped,
        "slots_skipped": dict(rec.skipped),
        "events_acknowledged": rec.events_acknowledged,
        "events_per_second": rec.events_acknowledged / load_seconds,
        "shipments": len(book.parcels),
        "parcels_delivered": sum(p.sequence == p.lifecycle for p in book.parcels),
        "anchored": anchored,
        "anchor_wait_s": anchor_wait,
        "lookup_verification": dict(rec.verification),
        "sample_verified": verified,
        "errors": errors,
        "error_kinds": dict(rec.errors),
        "error_examples": rec.examples,
        "trend": trend_figures(rec, sampler.samples),
        "memory": memory,
        "cpu_percent": {name: sampler.cpu_percent(name, load_seconds) for name in pids},
        "memory_samples": {
            k: [[round(t, 2), round(m, 2)] for t, m in v] for k, v in sampler.samples.items()
        },
        "flat_memory": flat,
    }
    result = SoakResult(figures, errors, flat)
    report(console, result)
    return result


def _pid(popen: Any) -> int:
    if popen is None:
        raise RuntimeError("the process is not running")
    return int(popen.pid)


def _progress(
    console: Console, rec: Recorder, start: float, duration: float, threads: list[threading.Thread]
) -> None:
    """A line every ~30 s while the load threads run."""
    every = 30.0 if duration >= 60 else max(5.0, duration / 3)
    last = start
    while any(t.is_alive() for t in threads):
        time.sleep(0.2)
        now = time.monotonic()
        if now - last >= every:
            last = now
            ops = sum(s.op in OPERATIONS for s in rec.samples)
            console.print(
                f"[dim]{now - start:5.0f} s: {ops} requests, "
                f"{rec.events_acknowledged} events, {sum(rec.errors.values())} errors[/]"
            )


def _verify_sample(cfg: SoakConfig, c: Client) -> int:
    """Look up ``verify_sample`` different parcels with events (within the lookup budget):
    each must verify, with every acknowledged event confirmed. The number that did."""
    verified = 0
    seen: set[str] = set()
    wanted = min(cfg.verify_sample, sum(1 for p in c.book.parcels if p.sequence))
    for _ in range(wanted):
        target = c.book.wait_for_lookup(65.0, exclude=seen)
        if target is None:
            break
        seen.add(target[0].tracking_number)
        if check_lookup(c, *target, final=True):
            verified += 1
    if verified < wanted:
        c.rec.error("final-lookup", f"only {verified} of {wanted} sampled parcels verified")
    return verified


# --- the report -----------------------------------------------------------------------------


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:,.1f}"


def report(console: Console, result: SoakResult) -> None:
    f = result.figures
    table = Table(title=f"Requests ({f['load_seconds']:.0f} s of load)")
    for col in (
        "operation",
        "count",
        "/s",
        "ok",
        "429",
        "errors",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "events/req",
    ):
        table.add_column(col, justify="left" if col == "operation" else "right")
    for op, row in f["operations"].items():
        table.add_row(
            op,
            str(row["count"]),
            _ms(row["per_second"]) if math.isnan(row["per_second"]) else f"{row['per_second']:.2f}",
            str(row["ok"]),
            str(row["rate_limited"]),
            str(row["errors"]),
            _ms(row["p50_ms"]),
            _ms(row["p95_ms"]),
            _ms(row["p99_ms"]),
            _ms(row["max_ms"]),
            f"{row['events_mean']:.1f}" if row["events_mean"] else "-",
            style="bold" if op.startswith("all") else None,
        )
    console.print(table)

    trend = Table(title="Per minute of load (latency p50 / p95 ms, RSS MiB at the minute's end)")
    names = list(f["memory"])
    cols = ["from", "requests", "event", "bulk", "lookup", "events/lookup"]
    for col in cols + [f"{n} RSS" for n in names]:
        trend.add_column(col, justify="right")
    for row in f["trend"]:
        trend.add_row(
            f"{row['from_s']:.0f} s",
            str(row["requests"]),
            *(f"{_ms(row[op + '_p50_ms'])} / {_ms(row[op + '_p95_ms'])}" for op in cols[2:5]),
            _ms(row["lookup_events_mean"]),
            *(_ms(row[f"{n}_rss_mib"]) for n in names),
        )
    console.print(trend)

    mem = Table(title=f"RSS (MiB) after a {f['config']['warmup_s']:.0f} s warm-up")
    for col in (
        "process",
        "samples",
        "start",
        "end",
        "max",
        "growth",
        "growth %",
        "slope MiB/min",
        "flat",
    ):
        mem.add_column(col, justify="left" if col == "process" else "right")
    for name, m in f["memory"].items():
        if not m.get("samples_after_warmup"):
            mem.add_row(name, str(m.get("samples", 0)), *["-"] * 6, "no")
            continue
        mem.add_row(
            name,
            str(m["samples"]),
            f"{m['start_mib']:.1f}",
            f"{m['end_mib']:.1f}",
            f"{m['max_mib']:.1f}",
            f"{m['growth_mib']:+.1f}",
            f"{m['growth_pct']:+.1f}",
            f"{m['slope_mib_per_min']:+.2f}",
            "[green]yes[/]" if m["flat"] else "[red]no[/]",
        )
    console.print(mem)
    cpu = ", ".join(f"{name} {pct:.0f}%" for name, pct in f["cpu_percent"].items())
    console.print(f"mean CPU over the load (% of one core): {cpu}")

    console.print(
        f"events acknowledged {f['events_acknowledged']} "
        f"({f['events_per_second']:.1f}/s) over {f['shipments']} shipments "
        f"({f['parcels_delivered']} delivered); anchored (confirmed) {f['anchored']} "
        f"after {f['anchor_wait_s']:.1f} s; sampled lookups verified {f['sample_verified']}"
    )
    console.print(f"lookup verifications (load and sample): {f['lookup_verification']}")
    console.print(
        f"slots skipped {f['slots_skipped'] or 0}, dropped late {f['slots_dropped_late']}"
    )
    if f["errors"]:
        console.print(f"[bold red]errors {f['errors']}[/]: {f['error_kinds']}")
        for example in f["error_examples"]:
            console.print(f"  [red]{example}[/]")
    else:
        console.print("[green]errors 0[/]")
    verdict = "flat" if result.flat else "NOT flat"
    style = "green" if result.flat else "red"
    console.print(
        f"memory: [{style}]{verdict}[/] (growth and fitted growth < "
        f"{f['config'].get('max_growth_pct', 10.0):g}% of the post-warm-up start)"
    )
    console.print("[bold green]PASS[/]" if result.ok else "[bold red]FAIL[/]")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of load (300)")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--rate", type=float, default=10.0, help="target operations (slots)/s")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--threads", type=int, default=6, help="client threads (6)")
    parser.add_argument(
        "--lookups-per-minute",
        type=int,
        default=50,
        help=f"this client's lookup budget (the node allows {NODE_LOOKUPS_PER_MINUTE})",
    )
    parser.add_argument("--pg-url", default=PG_URL, help="PostgreSQL server (a schema is made)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the node's files here")
    parser.add_argument("--max-growth-pct", type=float, default=10.0)
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.duration <= 0 or args.threads < 1:
        parser.error("--rate, --duration and --threads must be positive")
    cfg = SoakConfig(
        duration=args.duration,
        database=args.database,
        rate=args.rate,
        seed=args.seed,
        threads=args.threads,
        lookups_per_minute=args.lookups_per_minute,
        pg_url=args.pg_url,
        workdir=args.workdir,
        max_growth_pct=args.max_growth_pct,
    )
    console = Console()
    if not console.is_terminal:  # a log file: wide enough for the tables
        console = Console(width=132)
    result = run_soak(cfg, console)
    if args.json is not None:
        args.json.write_text(json.dumps(result.figures, indent=2, default=str) + "\n")
        console.print(f"[dim]figures written to {args.json}[/]")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
