"""Group commit of the audit log: concurrent records share transactions, nothing is lost,
the chain stays whole, and a failed batch fails every record in it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import pytest
from sqlalchemy import Engine

from parcelproof.core.errors import DatabaseUnavailableError
from parcelproof.service.audit import AuditAction, AuditEntry, AuditLog, verify
from parcelproof.store.audit_sql import SqlAuditStore
from parcelproof.store.db import session_factory
from tests.integration.test_audit_sql import LOG_A

THREADS, EACH = 16, 25


class CountingStore(SqlAuditStore):
    """The SQL store, counting the transactions that append."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.batches: list[int] = []
        self.fail = False

    def append_many(self, builds: Sequence[Callable[[int, bytes], AuditEntry]]) -> list[AuditEntry]:
        if self.fail:
            raise DatabaseUnavailableError("audit append failed: the database is unavailable")
        self.batches.append(len(builds))
        return super().append_many(builds)


def _hammer(log: AuditLog, errors: list[BaseException]) -> None:
    barrier = threading.Barrier(THREADS)

    def worker(n: int) -> None:
        barrier.wait()
        for i in range(EACH):
            try:
                log.record("customer", AuditAction.PERSONAL_DATA_READ, f"shipment-{n}-{i}")
            except BaseException as e:
                errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_concurrent_records_are_all_stored_in_one_whole_chain(sql_engine: Engine) -> None:
    store = CountingStore(session_factory(sql_engine), LOG_A)
    log = AuditLog(store)
    errors: list[BaseException] = []
    _hammer(log, errors)
    assert errors == []
    entries = log.entries()
    assert len(entries) == THREADS * EACH
    assert [e.seq for e in entries] == list(range(THREADS * EACH))
    assert {e.target for e in entries} == {
        f"shipment-{n}-{i}" for n in range(THREADS) for i in range(EACH)
    }
    assert verify(entries).ok
    # Callers that arrived while a batch was being written shared the next transaction.
    assert sum(store.batches) == THREADS * EACH
    assert len(store.batches) < THREADS * EACH
    assert max(store.batches) > 1


def test_a_failed_batch_fails_each_of_its_records(sql_engine: Engine) -> None:
    store = CountingStore(session_factory(sql_engine), LOG_A)
    log = AuditLog(store)
    log.record("customer", AuditAction.PERSONAL_DATA_READ, "shipment-before")
    store.fail = True
    errors: list[BaseException] = []
    _hammer(log, errors)
    assert len(errors) == THREADS * EACH
    assert all(isinstance(e, DatabaseUnavailableError) for e in errors)
    store.fail = False
    entry = log.record("customer", AuditAction.PERSONAL_DATA_READ, "shipment-after")
    assert entry.seq == 1  # nothing half-written
    assert verify(log.entries()).ok


@pytest.mark.parametrize("n", [1, 3])
def test_a_lone_record_is_appended_at_once(sql_engine: Engine, n: int) -> None:
    store = CountingStore(session_factory(sql_engine), LOG_A)
    log = AuditLog(store)
    for i in range(n):
        log.record("customer", AuditAction.PERSONAL_DATA_READ, f"shipment-{i}")
    assert store.batches == [1] * n
