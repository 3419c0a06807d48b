"""The proof-scaling benchmark (scripts/benchkit/proofs.py) on smoke sizes: its proofs are real
and verify, their length follows ⌈log₂ n⌉, tampering is caught, and it reports its tables."""

from __future__ import annotations

import dataclasses
import hashlib
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from parcelproof.core import merkle
from parcelproof.core.errors import (
    RootMismatchError,
    TrailingGarbageError,
    TruncationError,
    VerificationError,
)
from parcelproof.store.db import session_factory
from parcelproof.store.sql import SqlStore

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from benchkit import Section, proofs  # noqa: E402

SMOKE = (1000, 5000)
LOG_ID = hashlib.sha256(b"bench-test-log").digest()


def _ceil_log2(n: int) -> int:
    return (n - 1).bit_length()


def _cases(log: merkle.MemoryLog, count: int) -> list[proofs.Case]:
    n = len(log)
    indices, earlier = proofs.sample_indices(n, count)
    incl, cons, _, _ = proofs.generate(proofs.memory_reader(log), n, indices, earlier)
    for m, proof in zip(earlier, cons, strict=True):
        merkle.verify_consistency(m, n, log.root(m), log.root(), proof)
    return [
        proofs.Case(i, merkle.leaf_hash(proofs.leaf_data(i)), tuple(p))
        for i, p in zip(indices, incl, strict=True)
    ]


@pytest.fixture(scope="module")
def section(tmp_path_factory: pytest.TempPathFactory) -> Section:
    plots = tmp_path_factory.mktemp("plots")
    return proofs.run(sizes=SMOKE, pg_url=None, samples=50, plot_dir=plots)


def test_section_reports_a_table_per_path_and_the_headline(section: Section) -> None:
    assert section.title == "Proofs against log size"
    md = section.markdown
    assert "### MemoryLog" in md
    assert "### SqlStore on SQLite" in md
    assert "### SqlStore on PostgreSQL" not in md  # no server URL: said so, not faked
    assert "PostgreSQL: not measured" in md
    for header in ("proof length", "verifications/s per core", "gen peak KiB", "RSS MiB"):
        assert header in md
    for n in ("| 10³ |", "| 5,000 |"):
        assert md.count(n) == 2  # one row in each table
    rows = {what: (measured, target, met) for what, measured, target, met in section.headline}
    measured, target, met = rows["inclusion verifications per second, one core"]
    assert target == "≥ 20,000"
    rate = int(measured.split()[0].replace(",", ""))
    assert met is (rate >= 20_000)
    assert any(w.startswith("proof generation time at 5,000 vs 10³") for w in rows)
    assert [p.name for p in section.plots] == ["proof-time.png", "proof-memory.png"]
    for plot in section.plots:
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("n", SMOKE)
def test_sampled_proofs_verify_and_have_log2_length(n: int) -> None:
    log = proofs.build_memory_log(n)
    cases = _cases(log, 200)
    proofs.verify_all(cases, n, log.root())
    lengths = [len(c.proof) for c in cases]
    assert lengths == [merkle.inclusion_proof_length(c.index, n) for c in cases]
    assert max(lengths) == _ceil_log2(n)
    assert sum(lengths) / len(lengths) > _ceil_log2(n) - 2


def test_proof_length_grows_like_ceil_log2() -> None:
    log = proofs.build_memory_log(5000)
    for n in (2, 3, 4, 5, 1000, 1024, 1025, 4096, 5000):
        assert len(log.inclusion_proof(0, n)) == _ceil_log2(n)
        assert max(len(log.inclusion_proof(i, n)) for i in range(0, n, 7)) == _ceil_log2(n)


def test_the_timed_verification_rejects_tampered_proofs() -> None:
    log = proofs.build_memory_log(1000)
    root = log.root()
    cases = _cases(log, 20)
    good = cases[7]
    flipped = bytearray(good.proof[3])
    flipped[0] ^= 1
    tampered = {
        RootMismatchError: dataclasses.replace(
            good, proof=(*good.proof[:3], bytes(flipped), *good.proof[4:])
        ),
        TruncationError: dataclasses.replace(good, proof=good.proof[:-1]),
        TrailingGarbageError: dataclasses.replace(good, proof=(*good.proof, good.proof[0])),
        VerificationError: dataclasses.replace(good, leaf=merkle.leaf_hash(b"another parcel")),
    }
    for error, bad in tampered.items():
        with pytest.raises(error):
            proofs.verify_all([*cases[:7], bad, *cases[8:]], 1000, root)
        with pytest.raises(error):
            proofs.time_verification([bad], 1000, root, 10)
    moved = dataclasses.replace(good, index=(good.index + 1) % 1000)
    with pytest.raises(VerificationError):
        proofs.verify_all([moved], 1000, root)
    with pytest.raises(RootMismatchError):
        proofs.verify_all(cases, 1000, log.root(999))


def _check_store(engine_name: str, store: SqlStore, log: merkle.MemoryLog) -> None:
    n = len(log)
    assert store.log_size() == n
    indices, earlier = proofs.sample_indices(n, 30)
    reader = proofs.store_reader(store)
    assert merkle.tree_root(reader(), n) == log.root()
    incl, cons, incl_us, _ = proofs.generate(reader, n, indices, earlier)
    want, want_cons, _, _ = proofs.generate(proofs.memory_reader(log), n, indices, earlier)
    assert incl == want, engine_name
    assert cons == want_cons, engine_name
    assert all(t > 0 for t in incl_us)
    for i, proof in zip(indices, incl, strict=True):
        assert proofs.batched_inclusion_proof(store, i, n) == proof


def test_bulk_loaded_sqlite_store_serves_the_same_proofs_and_tampering_shows() -> None:
    log = proofs.build_memory_log(1000)
    with proofs.sqlite_engine() as engine:
        proofs.load_sqlite(engine, LOG_ID, log)
        store = SqlStore(session_factory(engine), LOG_ID)
        _check_store("sqlite", store, log)
        # The sibling of leaf 100 altered in the database: its proof no longer verifies.
        with engine.begin() as connection:
            connection.execute(
                text('UPDATE log_nodes SET hash = :h WHERE level = 0 AND "index" = 101'),
                {"h": bytes(32)},
            )
        proof = merkle.inclusion_proof(proofs.store_reader(store)(), 100, 1000)
        case = proofs.Case(100, merkle.leaf_hash(proofs.leaf_data(100)), tuple(proof))
        with pytest.raises(RootMismatchError):
            proofs.verify_all([case], 1000, log.root())


def test_bulk_loaded_postgres_store_serves_the_same_proofs(pg_url: str) -> None:
    log = proofs.build_memory_log(1000)
    with proofs.pg_schema_engine(pg_url) as engine:
        proofs.load_postgres(engine, LOG_ID, log)
        _check_store("postgresql", SqlStore(session_factory(engine), LOG_ID), log)
