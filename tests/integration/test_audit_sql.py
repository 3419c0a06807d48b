"""The audit log in SQL (SQLite, PostgreSQL) and anchored on real chains (eth-tester, anvil):
gapless concurrent appends, tampering through raw SQL, truncation and rewrites after anchoring,
and the anchoring worker."""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import threading
from collections.abc import Callable

import pytest
from eth_account.signers.local import LocalAccount
from sqlalchemy import Engine, text
from web3 import Web3

from parcelproof.chain import devnet
from parcelproof.chain.ledger import LedgerClient
from parcelproof.core.errors import (
    AuditLogTamperedError,
    ConflictError,
    FormatError,
    NonGrowingAuditHeadError,
)
from parcelproof.service.anchoring import AnchorPolicy, AnchorWorker
from parcelproof.service.audit import (
    ZERO_HASH,
    AuditAction,
    AuditAnchor,
    AuditLog,
    make_entry,
    verify,
)
from parcelproof.service.ports import Store
from parcelproof.store.audit_sql import SqlAuditStore
from parcelproof.store.db import make_engine, session_factory
from tests.conftest import make_courier

LOG_A = hashlib.sha256(b"audit courier A").digest()
LOG_B = hashlib.sha256(b"audit courier B").digest()


def audit_of(engine: Engine, log_id: bytes = LOG_A) -> AuditLog:
    return AuditLog(SqlAuditStore(session_factory(engine), log_id))


def fill(log: AuditLog, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        log.record(
            f"staff:user-{i % 4}", AuditAction.PERSONAL_DATA_READ, f"shipment-{i}", {"fields": 2}
        )


def sql(engine: Engine, statement: str, **params: object) -> None:
    with engine.begin() as connection:
        connection.execute(text(statement), params)


# --- storage ------------------------------------------------------------------------------------


def test_appends_read_back_in_order_per_log(sql_engine: Engine) -> None:
    a, b = audit_of(sql_engine, LOG_A), audit_of(sql_engine, LOG_B)
    fill(a, 7)
    b.record("cli:ops", AuditAction.KEYS_ROTATE, "k2", {"rewrapped": 3, "from_kids": "k1"})
    entries = a.entries()
    assert [e.seq for e in entries] == list(range(7))
    assert entries[0].prev_hash == ZERO_HASH
    assert a.head() == (7, entries[-1].entry_hash)
    assert [e.seq for e in a.entries(2, 5)] == [2, 3, 4]
    assert [e.seq for e in a.recent(3)] == [6, 5, 4]
    store = a.store
    assert isinstance(store, SqlAuditStore)
    assert list(store.iter_entries(batch=3)) == entries  # several pages, same entries
    assert list(store.iter_entries(5, batch=2)) == entries[5:]
    assert store.size() == 7
    assert verify(entries).ok
    [other] = b.entries()
    assert other.seq == 0 and other.prev_hash == ZERO_HASH and other.target == "k2"
    assert other.detail == {"from_kids": "k1", "rewrapped": 3}


def test_anchors_are_recorded_idempotently(sql_engine: Engine) -> None:
    store = SqlAuditStore(session_factory(sql_engine), LOG_A)
    assert store.latest_anchor() is None
    first = AuditAnchor(3, b"\x01" * 32, None, None, 100)
    store.add_anchor(first)
    store.add_anchor(AuditAnchor(3, b"\x01" * 32, b"\x0a" * 32, 17, 101))  # fills in the tx
    store.add_anchor(AuditAnchor(9, b"\x02" * 32, b"\x0b" * 32, 18, 102))
    assert [(a.size, a.tx_hash, a.block_number) for a in store.anchors()] == [
        (3, b"\x0a" * 32, 17),
        (9, b"\x0b" * 32, 18),
    ]
    latest = store.latest_anchor()
    assert latest is not None and latest.size == 9
    with pytest.raises(ConflictError, match="audit head of size 3 is recorded as"):
        store.add_anchor(AuditAnchor(3, b"\x03" * 32, None, None, 103))
    with pytest.raises(FormatError, match="positive"):
        store.add_anchor(AuditAnchor(0, b"\x03" * 32, None, None, 103))


def test_a_builder_that_ignores_the_next_seq_is_refused(sql_engine: Engine) -> None:
    store = SqlAuditStore(session_factory(sql_engine), LOG_A)

    def wrong(seq: int, prev: bytes) -> object:
        return make_entry(seq + 1, 1, "cli", AuditAction.STAFF_LOGIN, None, "{}", prev)

    with pytest.raises(FormatError, match="must be seq 0"):
        store.append(wrong)  # type: ignore[arg-type]
    assert store.head() == (0, ZERO_HASH)


def test_concurrent_appends_from_threads_give_one_gapless_chain(sql_engine: Engine) -> None:
    threads, per_thread = 6, 15
    url = sql_engine.url.render_as_string(hide_password=False)
    barrier = threading.Barrier(threads)
    failures: list[BaseException] = []

    def worker(t: int) -> None:
        engine = make_engine(url)  # its own pool, as another API node would have
        try:
            log = audit_of(engine)
            barrier.wait()
            for i in range(per_thread):
                log.record(f"client:t{t}", AuditAction.EVIDENCE_READ, f"s-{t}-{i}")
        except BaseException as e:
            failures.append(e)
        finally:
            engine.dispose()

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert failures == []
    entries = audit_of(sql_engine).entries()
    total = threads * per_thread
    assert [e.seq for e in entries] == list(range(total))
    assert len({e.target for e in entries}) == total
    report = verify(entries)
    assert report.ok, [p.message for p in report.problems]


def _append_in_process(url: str, n: int, tag: str) -> None:
    engine = make_engine(url)
    try:
        fill_tagged = audit_of(engine)
        for i in range(n):
            fill_tagged.record(f"proc:{tag}", AuditAction.STAFF_LOGIN, None, {"i": i})
    finally:
        engine.dispose()


def test_concurrent_appends_from_processes_give_one_gapless_chain(sql_engine: Engine) -> None:
    url = sql_engine.url.render_as_string(hide_password=False)
    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=_append_in_process, args=(url, 12, str(p))) for p in range(3)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    assert [proc.exitcode for proc in procs] == [0, 0, 0]
    entries = audit_of(sql_engine).entries()
    assert [e.seq for e in entries] == list(range(36))
    assert verify(entries).ok


# --- tampering through raw SQL --------------------------------------------------------------------


def test_a_raw_update_is_an_edited_entry(sql_engine: Engine) -> None:
    log = audit_of(sql_engine)
    fill(log, 6)
    sql(sql_engine, "UPDATE audit_log SET actor = 'staff:innocent' WHERE seq = 2")
    report = log.verify_against([])
    assert [(p.kind, p.seq) for p in report.problems] == [("edited", 2)]
    assert report.problems[0].message.startswith("entry seq 2 was edited: stored hash 0x")


def test_a_raw_detail_rewrite_is_an_edited_entry(sql_engine: Engine) -> None:
    log = audit_of(sql_engine)
    fill(log, 4)
    sql(sql_engine, "UPDATE audit_log SET detail = :d WHERE seq = 1", d='{"fields":0}')
    report = log.verify_against([])
    assert [(p.kind, p.seq) for p in report.problems] == [("edited", 1)]


def test_a_raw_delete_is_a_deleted_entry(sql_engine: Engine) -> None:
    log = audit_of(sql_engine)
    fill(log, 6)
    sql(sql_engine, "DELETE FROM audit_log WHERE seq IN (2, 3)")
    report = log.verify_against([])
    assert [(p.kind, p.seq) for p in report.problems] == [("deleted", 2)]
    assert report.problems[0].message == "entries seq 2-3 are missing: deleted from the log"


def test_swapping_two_rows_contents_is_reported_as_reordering(sql_engine: Engine) -> None:
    log = audit_of(sql_engine)
    fill(log, 8)
    # Swap rows 3 and 4 through a free seq (seq >= 0 is a constraint).
    sql(sql_engine, "UPDATE audit_log SET seq = 1000000 WHERE seq = 3")
    sql(sql_engine, "UPDATE audit_log SET seq = 3 WHERE seq = 4")
    sql(sql_engine, "UPDATE audit_log SET seq = 4 WHERE seq = 1000000")
    report = log.verify_against([])
    assert [(p.kind, p.seq) for p in report.problems] == [("reordered", 3), ("reordered", 4)]
    assert report.problems[0].message == (
        "entry at seq 3 was written as seq 4: entries were moved (reordered or renumbered)"
    )


# --- anchored on a real chain ---------------------------------------------------------------------


def _ledger(w3: Web3) -> tuple[LedgerClient, LocalAccount, LocalAccount]:
    admin, account = devnet.funded_accounts(w3, 2)
    ledger = LedgerClient.deploy(w3, admin)
    ledger.admit_courier(LOG_A, account.address, sender=admin)
    return ledger, account, admin


def test_anchor_then_truncate_is_detected_against_the_chain(
    chain: Web3, sql_engine: Engine
) -> None:
    ledger, account, _ = _ledger(chain)
    log = audit_of(sql_engine)
    assert log.anchor(ledger, sender=account) is None  # nothing to anchor yet
    fill(log, 5)
    first = log.anchor(ledger, sender=account)
    assert first is not None and (first.size, first.head) == log.head()
    assert first.block_number is not None and first.tx_hash is not None
    assert log.anchor(ledger, sender=account) is None  # did not grow
    fill(log, 4, start=5)
    second = log.anchor(ledger, sender=account)
    assert second is not None and second.size == 9
    on_chain = ledger.latest_audit_head(LOG_A)
    assert on_chain is not None and (on_chain.size, on_chain.head) == (9, second.head)
    assert [a.size for a in log.anchors()] == [5, 9]
    assert log.verify_against(ledger.audit_heads(LOG_A)).ok

    sql(sql_engine, "DELETE FROM audit_log WHERE seq >= 7")
    report = log.verify_against(ledger.audit_heads(LOG_A))
    assert verify(log.entries()).ok  # locally the shorter chain still links
    assert [p.kind for p in report.problems] == ["truncated"]
    assert report.problems[0].message == (
        "the ledger anchored an audit head at size 9 but the local log ends at size 7: "
        "entries 7-8 were deleted (truncation)"
    )
    fill(log, 3, start=100)  # new entries reuse seqs 7-9: the chain's head still tells
    report = log.verify_against(ledger.audit_heads(LOG_A))
    assert [(p.kind, p.seq) for p in report.problems] == [("head-mismatch", 8)]


def test_anchoring_refuses_a_truncated_or_rewritten_log(chain: Web3, sql_engine: Engine) -> None:
    ledger, account, _ = _ledger(chain)
    log = audit_of(sql_engine)
    fill(log, 6)
    log.anchor(ledger, sender=account)

    sql(sql_engine, "DELETE FROM audit_log WHERE seq >= 4")
    with pytest.raises(AuditLogTamperedError, match="ends at size 4: entries 4-5 were deleted"):
        log.anchor(ledger, sender=account)

    # Rebuild a full, internally consistent chain with one entry changed.
    entries = log.entries()
    sql(sql_engine, "DELETE FROM audit_log")
    forged = audit_of(sql_engine)
    for e in entries:
        actor = "staff:forged" if e.seq == 1 else e.actor
        forged.record(actor, e.action, e.target, e.detail)
    fill(forged, 4, start=4)
    assert verify(forged.entries()).ok
    with pytest.raises(AuditLogTamperedError, match="was rewritten since it was anchored") as info:
        forged.anchor(ledger, sender=account)
    assert "the ledger anchored head 0x" in info.value.problems[0]
    latest = ledger.latest_audit_head(LOG_A)
    assert latest is not None and latest.size == 6  # nothing was anchored over it
    report = forged.verify_against(ledger.audit_heads(LOG_A))
    assert [(p.kind, p.seq) for p in report.problems] == [("head-mismatch", 5)]


def test_a_head_anchored_before_a_crash_is_learnt(chain: Web3, sql_engine: Engine) -> None:
    ledger, account, _ = _ledger(chain)
    log = audit_of(sql_engine)
    fill(log, 3)
    size, head = log.head()
    sent = ledger.anchor_audit_head(size, head, sender=account)  # the node died right after
    assert log.anchors() == []
    assert log.anchor(ledger, sender=account) is None  # nothing new, but the head is learnt
    [learnt] = log.anchors()
    assert (learnt.size, learnt.head, learnt.block_number, learnt.tx_hash) == (
        3,
        head,
        sent.block_number,
        sent.tx_hash,
    )
    fill(log, 1, start=3)
    assert log.anchor(ledger, sender=account) is not None


def test_a_race_with_another_anchorer_surfaces_as_the_ledger_error(
    chain: Web3, sql_engine: Engine
) -> None:
    ledger, account, _ = _ledger(chain)
    log = audit_of(sql_engine)
    fill(log, 2)

    class Racing:
        """The real ledger, but someone anchors the same size just before we send."""

        def __init__(self) -> None:
            self.raced = False

        def latest_audit_head(self, courier_id: bytes) -> object:
            return ledger.latest_audit_head(courier_id)

        def audit_heads(self, courier_id: bytes, from_block: int = 0) -> object:
            return ledger.audit_heads(courier_id, from_block)

        def anchor_audit_head(self, size: int, head: bytes, *, sender: LocalAccount) -> object:
            if not self.raced:
                self.raced = True
                ledger.anchor_audit_head(size, head, sender=sender)
            return ledger.anchor_audit_head(size, head, sender=sender)

    with pytest.raises(NonGrowingAuditHeadError, match="ParcelLedgerAuditSizeNotIncreasing"):
        log.anchor(Racing(), sender=account)  # type: ignore[arg-type]
    assert log.anchor(ledger, sender=account) is None  # the next cycle catches up
    assert [a.size for a in log.anchors()] == [2]


# --- the worker -----------------------------------------------------------------------------------


def test_the_worker_anchors_the_audit_head_with_checkpoints_and_on_its_own(
    chain: Web3, sql_engine: Engine, sql_stores: Callable[[bytes], Store]
) -> None:
    c = make_courier(chain, sql_stores)
    audit = audit_of(sql_engine, c.node.courier_id)
    clock = [0.0]
    worker = AnchorWorker(
        c.node, AnchorPolicy(interval_seconds=30), monotonic=lambda: clock[0], audit=audit
    )
    fill(audit, 3)
    assert worker.step().audit is None  # no leaves, interval not elapsed
    clock[0] += 31
    first = worker.step().audit  # no leaves at all, but the audit head grew
    assert first is not None and first.size == 3
    assert worker.step().audit is None

    c.node.create_shipment("PPAUDIT1", {"recipient": "Lea Keller"}, "8001")
    c.driver.record(c.node, "PPAUDIT1", {"status": "picked_up"}, c.now - 60)
    fill(audit, 2, start=3)
    result = worker.step(force=True)  # a checkpoint is anchored: the audit head rides along
    assert result.anchored is not None and result.audit is not None
    assert result.audit.size == 5
    on_chain = c.ledger.latest_audit_head(c.node.courier_id)
    assert on_chain is not None and on_chain.size == 5
    assert audit.verify_against(c.ledger.audit_heads(c.node.courier_id)).ok


def test_a_rejected_audit_anchor_is_logged_and_never_stops_the_worker(
    chain: Web3,
    sql_engine: Engine,
    sql_stores: Callable[[bytes], Store],
    caplog: pytest.LogCaptureFixture,
) -> None:
    c = make_courier(chain, sql_stores)
    audit = audit_of(sql_engine, c.node.courier_id)
    fill(audit, 2)
    worker = AnchorWorker(c.node, audit=audit)
    c.ledger.remove_courier(c.node.courier_id, sender=c.admin)
    with caplog.at_level(logging.WARNING, logger="parcelproof.anchoring"):
        result = worker.step(force=True)
    assert result.audit is None
    assert "audit head not anchored (ParcelLedgerInactiveCourier)" in caplog.text

    tampered = audit_of(sql_engine, c.node.courier_id)
    sql(sql_engine, "UPDATE audit_log SET actor = 'x' WHERE seq = 0")
    caplog.clear()
    worker = AnchorWorker(c.node, audit=tampered)
    with caplog.at_level(logging.ERROR, logger="parcelproof.anchoring"):
        assert worker.step(force=True).audit is None
    assert "audit log not anchored: refusing to anchor the audit log" in caplog.text
    assert "entry seq 0 was edited" in caplog.text
