"""The node's own figures: bulk ingest throughput, accept-to-anchor latency, lookup latency.

Everything runs the way operators run it: ``parcelproof serve --no-worker`` and
``parcelproof anchor-worker`` as processes on anvil, set up by ``dev-setup``, on PostgreSQL
or SQLite (the fault harness's :class:`System`). The client is this process, over HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import statistics
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from tests.conftest import pg_schema
from tests.faults.harness import Parcel, System, interleave, make_parcels

from benchkit import Section, percentile, table
from parcelproof.chain import devnet
from parcelproof.chain.ledger import LedgerClient

#: Lookups in the benchmark must measure the node, not its abuse limits.
UNLIMITED = {
    "PARCELPROOF_LOOKUP_LIMIT_PER_CLIENT": "100000000/minute",
    "PARCELPROOF_LOOKUP_LIMIT_PER_PARCEL": "100000000/minute",
}
#: Ingest and lookups run the API as one process per core (``serve --workers 2``); the
#: accept-to-anchor latency runs on the node's defaults.
API_WORKERS = 2
#: Connections the ingest client sends over (two per API process).
CONNECTIONS = 4
THROUGHPUT = {**UNLIMITED, "PARCELPROOF_API_WORKERS": str(API_WORKERS)}


@dataclass
class NodeFigures:
    """What one database's run measured."""

    database: str
    ingest_events: int = 0
    ingest_seconds: float = 0.0
    ingest_rejected: int = 0
    ingest_rates: list[float] = field(default_factory=list)  # events/s of each repetition
    latency: list[float] = field(default_factory=list)  # accept -> anchored on chain, seconds
    latency_events: int = 0
    lookups: dict[int, list[float]] = field(default_factory=dict)  # clients -> latencies (s)
    lookup_seconds: dict[int, float] = field(default_factory=dict)
    lookup_errors: dict[int, int] = field(default_factory=dict)

    @property
    def ingest_rate(self) -> float:
        """The median of the repetitions' rates."""
        if self.ingest_rates:
            return statistics.median(self.ingest_rates)
        return self.ingest_events / self.ingest_seconds if self.ingest_seconds else 0.0


@contextlib.contextmanager
def system(
    workdir: Path,
    rpc_url: str,
    database: str,
    pg_url: str | None,
    *,
    env: dict[str, str] | None = None,
) -> Iterator[System]:
    """A fresh node (new ledger, new database) with the node's default settings."""
    with contextlib.ExitStack() as stack:
        if database == "postgresql":
            if pg_url is None:
                raise ValueError("PostgreSQL needs a URL")
            url = stack.enter_context(pg_schema(pg_url, "pp_bench"))
        else:
            url = f"sqlite:///{workdir / 'parcelproof.sqlite'}"
        s = System(workdir, rpc_url, url, anchor_interval=None, extra_env=dict(env or {}))
        s.start()
        stack.callback(s.stop)
        yield s


def _parcels(s: System, count: int, events_each: int, seed: int) -> list[Parcel]:
    with httpx.Client(base_url=s.api.url, timeout=60) as client:
        return make_parcels(s, client, random.Random(seed), count, count * events_each)


def measure_ingest(
    s: System, figures: NodeFigures, *, events: int, parcels: int, batch: int, seed: int
) -> None:
    """Pre-signed events (as scanners upload them) through ``POST /v1/events/bulk``, each
    signature checked by the node; events per second from the first request to the last
    answer. Four connections send batches side by side, as a courier's upload service
    would."""
    chosen = _parcels(s, parcels, max(1, events // parcels), seed)
    stream = interleave(chosen, random.Random(seed))
    auth = {"Authorization": f"Bearer {s.token}"}
    rejected = 0
    lock = threading.Lock()
    # The events of one parcel must arrive in order: each parcel's events go over one
    # connection, in order, in requests of ``batch``.
    streams: list[list[dict[str, Any]]] = [[] for _ in range(CONNECTIONS)]
    for e in stream:
        streams[zlib.crc32(e["tracking_number"].encode()) % CONNECTIONS].append(e)
    lanes = [[part[i : i + batch] for i in range(0, len(part), batch)] for part in streams]

    def send(lane: list[list[dict[str, Any]]]) -> None:
        nonlocal rejected
        with httpx.Client(base_url=s.api.url, timeout=120) as client:
            for chunk in lane:
                r = client.post("/v1/events/bulk", headers=auth, json={"events": chunk})
                r.raise_for_status()
                bad = sum(item["status"] not in (200, 201) for item in r.json()["results"])
                with lock:
                    rejected += bad

    started = time.perf_counter()
    threads = [threading.Thread(target=send, args=(lane,)) for lane in lanes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started
    figures.ingest_seconds += seconds
    figures.ingest_events += len(stream)
    figures.ingest_rejected += rejected
    figures.ingest_rates.append(len(stream) / seconds)


def measure_anchor_latency(
    s: System, figures: NodeFigures, *, seconds: float, rate: float, seed: int
) -> None:
    """A steady stream of ``rate`` events a second for ``seconds``, one event per request,
    while a watcher reads the courier's latest checkpoint on chain every 20 ms: for each
    event, the time from the node's answer (accepted) to the first checkpoint on chain that
    covers its leaf."""
    count = max(1, int(seconds * rate))
    chosen = _parcels(s, max(1, count // 4), 4, seed)
    stream = interleave(chosen, random.Random(seed))[:count]
    ledger = LedgerClient(devnet.connect(s.rpc_url), s.settings.ledger_address or "")
    courier = bytes.fromhex((s.settings.courier_id or "")[2:])
    accepted: list[tuple[int, float]] = []  # (leaf index, when the answer came)
    anchored_at: list[tuple[int, float]] = []  # (checkpoint size, when first seen on chain)
    done = threading.Event()

    def watch() -> None:
        last = 0
        while not done.is_set():
            cp = ledger.latest_checkpoint(courier)
            now = time.perf_counter()
            if cp is not None and cp.size > last:
                anchored_at.append((cp.size, now))
                last = cp.size
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    auth = {"Authorization": f"Bearer {s.token}"}
    with httpx.Client(base_url=s.api.url, timeout=60) as client:
        start = time.perf_counter()
        for i, event in enumerate(stream):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            r = client.post("/v1/events", headers=auth, json=event)
            r.raise_for_status()
            accepted.append((r.json()["leaf_index"], time.perf_counter()))
    top = max(leaf for leaf, _ in accepted)
    deadline = time.perf_counter() + 120
    while not anchored_at or anchored_at[-1][0] <= top:
        if time.perf_counter() > deadline:
            raise TimeoutError("the stream's events were not anchored within 120 s")
        time.sleep(0.05)
    done.set()
    watcher.join()
    for leaf, at in accepted:
        seen = next(when for size, when in anchored_at if size > leaf)
        figures.latency.append(max(0.0, seen - at))
    figures.latency_events = len(accepted)


async def _lookup_clients(
    url: str, parcels: list[Parcel], clients: int, seconds: float, seed: int
) -> tuple[list[float], int, float]:
    """``clients`` closed-loop customers, each looking a random parcel up as soon as its
    previous answer came, for ``seconds``."""
    latencies: list[float] = []
    errors = 0
    rng = random.Random(seed)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        stop_at = time.perf_counter() + seconds

        async def customer() -> None:
            nonlocal errors
            while time.perf_counter() < stop_at:
                p = rng.choice(parcels)
                t = time.perf_counter()
                r = await client.post(
                    "/v1/lookup",
                    json={"tracking_number": p.tracking_number, "postcode": p.postcode},
                )
                elapsed = time.perf_counter() - t
                if r.status_code == 200 and r.json()["verification"]["ok"]:
                    latencies.append(elapsed)
                else:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(customer() for _ in range(clients)))
        return latencies, errors, time.perf_counter() - started


def measure_lookups(
    s: System,
    figures: NodeFigures,
    *,
    parcels: int,
    events_each: int,
    clients: Sequence[int],
    seconds: float,
    seed: int,
) -> None:
    """Customer lookups (tracking number + postcode) of anchored parcels, each answer
    verified by the node against the chain, at each number of concurrent clients."""
    chosen = _parcels(s, parcels, events_each, seed)
    stream = interleave(chosen, random.Random(seed))
    auth = {"Authorization": f"Bearer {s.token}"}
    with httpx.Client(base_url=s.api.url, timeout=60) as client:
        for i in range(0, len(stream), 500):
            client.post(
                "/v1/events/bulk", headers=auth, json={"events": stream[i : i + 500]}
            ).raise_for_status()
        _wait_anchored(client, chosen[-1])
    for n in clients:
        asyncio.run(_lookup_clients(s.api.url, chosen, n, min(2.0, seconds), seed))  # warm-up
        lat, errors, wall = asyncio.run(_lookup_clients(s.api.url, chosen, n, seconds, seed + n))
        figures.lookups[n], figures.lookup_errors[n], figures.lookup_seconds[n] = lat, errors, wall


def _wait_anchored(client: httpx.Client, parcel: Parcel, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    body = {"tracking_number": parcel.tracking_number, "postcode": parcel.postcode}
    while time.monotonic() < deadline:
        r = client.post("/v1/lookup", json=body)
        if r.status_code == 200 and all(t["anchoring"] != "pending" for t in r.json()["timeline"]):
            return
        time.sleep(0.2)
    raise TimeoutError("the lookup parcels were not anchored")


@dataclass(frozen=True)
class NodePlan:
    """How much the node benchmark does."""

    ingest_events: int = 20_000
    ingest_repeats: int = 3  # the median is reported: the two shared cores make runs vary
    ingest_parcels: int = 2_000
    batch: int = 500
    latency_seconds: float = 30.0
    latency_rate: float = 20.0
    lookup_parcels: int = 300
    lookup_events_each: int = 6
    lookup_clients: tuple[int, ...] = (1, 10, 50)
    lookup_seconds: float = 15.0


SMOKE = NodePlan(
    ingest_events=200,
    ingest_repeats=1,
    ingest_parcels=20,
    batch=50,
    latency_seconds=3.0,
    latency_rate=10.0,
    lookup_parcels=10,
    lookup_events_each=3,
    lookup_clients=(1, 4),
    lookup_seconds=1.0,
)


def run(
    rpc_url: str,
    pg_url: str | None,
    *,
    databases: Sequence[str] = ("postgresql", "sqlite"),
    plan: NodePlan = NodePlan(),
    seed: int = 8,
    log: Any = print,
) -> tuple[list[NodeFigures], list[Section]]:
    """Every node measurement on each database; ingest on all, latency and lookups on the
    first (the production database)."""
    results: list[NodeFigures] = []
    with tempfile.TemporaryDirectory(prefix="parcelproof-bench-") as tmp:
        for i, database in enumerate(databases):
            figures = NodeFigures(database)
            ingest_dir = Path(tmp) / f"{database}-ingest"
            with system(ingest_dir, rpc_url, database, pg_url, env=THROUGHPUT) as s:
                for repetition in range(plan.ingest_repeats):
                    log(f"  {database}: ingest of {plan.ingest_events:,} events")
                    measure_ingest(
                        s,
                        figures,
                        events=plan.ingest_events,
                        parcels=plan.ingest_parcels,
                        batch=plan.batch,
                        seed=seed + 1000 * repetition,
                    )
                    log(f"    {figures.ingest_rates[-1]:,.0f} events/s")
            if i == 0:
                latency_dir = Path(tmp) / f"{database}-latency"
                with system(latency_dir, rpc_url, database, pg_url, env=UNLIMITED) as s:
                    log(f"  {database}: accept-to-anchor latency, {plan.latency_seconds:.0f} s")
                    measure_anchor_latency(
                        s,
                        figures,
                        seconds=plan.latency_seconds,
                        rate=plan.latency_rate,
                        seed=seed,
                    )
                lookup_dir = Path(tmp) / f"{database}-lookup"
                with system(lookup_dir, rpc_url, database, pg_url, env=THROUGHPUT) as s:
                    log(f"  {database}: lookups at {plan.lookup_clients} clients")
                    measure_lookups(
                        s,
                        figures,
                        parcels=plan.lookup_parcels,
                        events_each=plan.lookup_events_each,
                        clients=plan.lookup_clients,
                        seconds=plan.lookup_seconds,
                        seed=seed,
                    )
            results.append(figures)
    return results, sections(results, plan)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def sections(results: Sequence[NodeFigures], plan: NodePlan) -> list[Section]:
    """The ingest, latency and lookup parts of docs/benchmarks.md."""
    ingest = Section(
        "Bulk ingest throughput",
        table(
            ["database", "events", "seconds", "events/s (median)", "each repetition", "rejected"],
            [
                [
                    f.database,
                    f.ingest_events,
                    round(f.ingest_seconds, 2),
                    round(f.ingest_rate),
                    ", ".join(f"{r:,.0f}" for r in f.ingest_rates),
                    f.ingest_rejected,
                ]
                for f in results
            ],
        )
        + f"\n\n{plan.ingest_repeats} repetitions on the same node, each of "
        f"{plan.ingest_events:,} pre-signed events of {plan.ingest_parcels:,} new parcels, in "
        "bulk requests of "
        f"{plan.batch}, over {CONNECTIONS} connections side by side (each parcel's events "
        "on one, in order), through `POST /v1/events/bulk` of "
        f"`serve --no-worker --workers {API_WORKERS}` (one API process per core) while its "
        "`anchor-worker` anchors (other settings: the node's defaults). "
        "The node checks every signature (EIP-712, secp256k1 recovery), the agent key's "
        "validity, the hash chain and the status rules, seals each event's fields (AES-GCM) "
        "and appends the leaves, and answers each event's outcome.",
    )
    for f in results:
        ingest.headline.append(
            (
                f"signed milestones ingested per second ({f.database})",
                f"{f.ingest_rate:,.0f}",
                "≥ 2,000",
                f.ingest_rate >= 2000,
            )
        )
    sections_ = [ingest]
    first = results[0] if results else None
    if first is not None and first.latency:
        p50, p99 = percentile(first.latency, 50), percentile(first.latency, 99)
        sections_.append(
            Section(
                "From accepted to anchored",
                table(
                    ["database", "events", "p50 s", "p90 s", "p99 s", "max s"],
                    [
                        [
                            first.database,
                            first.latency_events,
                            round(p50, 3),
                            round(percentile(first.latency, 90), 3),
                            round(p99, 3),
                            round(max(first.latency), 3),
                        ]
                    ],
                )
                + f"\n\n{plan.latency_rate:g} events a second for {plan.latency_seconds:g} s, "
                "one `POST /v1/events` each, with the node's default settings "
                "(`PARCELPROOF_ANCHOR_INTERVAL_SECONDS` 1, the worker checking every half "
                "interval). Measured from the node's answer to the first moment the "
                "courier's latest checkpoint on chain covers the event's leaf (read every "
                "20 ms).",
                headline=[("accepted → anchored, p50", f"{p50:.2f} s", "≤ 2 s", p50 <= 2.0)],
            )
        )
    if first is not None and first.lookups:
        rows = []
        headline = []
        for n, lat in first.lookups.items():
            p50, p99 = percentile(lat, 50), percentile(lat, 99)
            rows.append(
                [
                    n,
                    len(lat),
                    round(len(lat) / first.lookup_seconds[n]),
                    _ms(p50),
                    _ms(percentile(lat, 90)),
                    _ms(p99),
                    _ms(statistics.mean(lat)),
                    first.lookup_errors[n],
                ]
            )
            if n == max(first.lookups):
                headline.append(
                    (
                        f"lookup p99 at {n} clients",
                        f"{p99 * 1000:,.0f} ms",
                        "≤ 100 ms",
                        p99 <= 0.1,
                    )
                )
        sections_.append(
            Section(
                "Customer lookups with verification",
                table(
                    [
                        "clients",
                        "lookups",
                        "lookups/s",
                        "p50 ms",
                        "p90 ms",
                        "p99 ms",
                        "mean ms",
                        "errors",
                    ],
                    rows,
                )
                + f"\n\n`POST /v1/lookup` (tracking number and postcode) on `serve --workers "
                f"{API_WORKERS}`, of {plan.lookup_parcels} "
                f"anchored parcels of {plan.lookup_events_each} events, each client asking "
                "again as soon as it has its answer (closed loop, no think time), for "
                f"{plan.lookup_seconds:g} s after a warm-up. Every answer carries the proof "
                "bundle and the node's verification of it against the chain (signatures, "
                "agent keys, inclusion and consistency proofs, anchored roots); it counts "
                "only when that verification passed. The clients run in this process "
                "(asyncio) on the same two cores as the node and the database.",
                headline=headline,
            )
        )
    return sections_
