"""SQL storage of a node's hash-chained audit log (SQLite, PostgreSQL): ``audit_log`` and
``audit_anchors`` rows of one log id."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session, sessionmaker

from parcelproof.core.errors import ConflictError, FormatError
from parcelproof.service.audit import ZERO_HASH, AuditAnchor, AuditEntry
from parcelproof.service.ports import Clock, SystemClock
from parcelproof.store.db import engine_of, transaction
from parcelproof.store.models import AuditAnchorRow, AuditEntryRow

if TYPE_CHECKING:
    from parcelproof.service.audit import AuditStore

__all__ = ["SqlAuditStore"]

_BATCH = 500
_MAX_RECENT = 10_000


class SqlAuditStore:
    """The audit log of one courier log id in SQL.

    Appends serialise per log: a transaction-scoped ``pg_advisory_xact_lock`` on PostgreSQL
    (across processes and machines), ``BEGIN IMMEDIATE`` on SQLite (the database's single
    write lock). Under that lock the next seq and the previous hash are read and the new row
    inserted, so concurrent writers never fork the chain or leave a gap; the ``(log_id, seq)``
    primary key backs this up. Driver failures surface as :class:`StoreError`.
    """

    def __init__(
        self, sessions: sessionmaker[Session], log_id: bytes, *, clock: Clock | None = None
    ) -> None:
        if not isinstance(log_id, bytes) or len(log_id) != 32:
            raise FormatError("log id must be 32 bytes")
        self._sessions = sessions
        self._log_id = log_id
        self._clock = clock or SystemClock()
        self._dialect = engine_of(sessions).dialect.name
        # A signed 64-bit advisory-lock key of its own, apart from the anchoring worker's.
        digest = hashlib.sha256(b"parcelproof/audit-lock\x00" + log_id).digest()
        self._lock_key = int.from_bytes(digest[:8], "big", signed=True)

    @property
    def log_id(self) -> bytes:
        return self._log_id

    # --- entries ----------------------------------------------------------------------------

    def append(self, build: Callable[[int, bytes], AuditEntry]) -> AuditEntry:
        """Append ``build(seq, prev_hash)`` as the log's next entry, atomically."""
        return self.append_many([build])[0]

    def append_many(self, builds: Sequence[Callable[[int, bytes], AuditEntry]]) -> list[AuditEntry]:
        """Append one entry per builder, in order, in one transaction (one lock, one commit):
        each builder gets the seq and hash that follow the entry before it."""
        entries: list[AuditEntry] = []
        with self._transaction(write=True) as s:
            if self._dialect == "postgresql":
                s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": self._lock_key})
            last = s.execute(
                select(AuditEntryRow.seq, AuditEntryRow.entry_hash)
                .where(AuditEntryRow.log_id == self._log_id)
                .order_by(AuditEntryRow.seq.desc())
                .limit(1)
            ).one_or_none()
            seq, prev = (0, ZERO_HASH) if last is None else (last[0] + 1, last[1])
            for build in builds:
                entry = build(seq, prev)
                if entry.seq != seq or entry.prev_hash != prev:
                    raise FormatError(f"audit entry must be seq {seq} following the last entry")
                entries.append(entry)
                seq, prev = seq + 1, entry.entry_hash
            if entries:
                s.execute(
                    insert(AuditEntryRow),
                    [
                        {
                            "log_id": self._log_id,
                            "seq": e.seq,
                            "at": e.at,
                            "actor": e.actor,
                            "action": e.action,
                            "target": e.target,
                            "detail": e.detail_json,
                            "prev_hash": e.prev_hash,
                            "entry_hash": e.entry_hash,
                        }
                        for e in entries
                    ],
                )
        return entries

    def entries(self, start: int = 0, stop: int | None = None) -> list[AuditEntry]:
        """Entries with ``start <= seq < stop`` (``stop`` None: to the end), by seq."""
        return list(self.iter_entries(start, stop))

    def iter_entries(
        self, start: int = 0, stop: int | None = None, *, batch: int = _BATCH
    ) -> Iterator[AuditEntry]:
        """Like :meth:`entries`, read ``batch`` rows per query (keyset pagination), so a long
        log is never held in memory at once."""
        if batch < 1:
            raise FormatError("batch must be positive")
        after = start
        while stop is None or after < stop:
            query = (
                select(AuditEntryRow)
                .where(AuditEntryRow.log_id == self._log_id, AuditEntryRow.seq >= after)
                .order_by(AuditEntryRow.seq)
                .limit(batch)
            )
            if stop is not None:
                query = query.where(AuditEntryRow.seq < stop)
            with self._transaction() as s:
                rows = [_entry(r) for r in s.scalars(query)]
            yield from rows
            if len(rows) < batch:
                return
            after = rows[-1].seq + 1

    def recent(self, limit: int) -> list[AuditEntry]:
        """The ``limit`` newest entries, newest first."""
        if not isinstance(limit, int) or not 1 <= limit <= _MAX_RECENT:
            raise FormatError(f"limit must be between 1 and {_MAX_RECENT}")
        with self._transaction() as s:
            rows = s.scalars(
                select(AuditEntryRow)
                .where(AuditEntryRow.log_id == self._log_id)
                .order_by(AuditEntryRow.seq.desc())
                .limit(limit)
            )
            return [_entry(r) for r in rows]

    def head(self) -> tuple[int, bytes]:
        """(last seq + 1, the last entry's stored hash); (0, zero hash) while empty."""
        with self._transaction() as s:
            last = s.execute(
                select(AuditEntryRow.seq, AuditEntryRow.entry_hash)
                .where(AuditEntryRow.log_id == self._log_id)
                .order_by(AuditEntryRow.seq.desc())
                .limit(1)
            ).one_or_none()
        return (0, ZERO_HASH) if last is None else (last[0] + 1, last[1])

    def size(self) -> int:
        """The log's size: last seq + 1."""
        return self.head()[0]

    # --- anchors ----------------------------------------------------------------------------

    def add_anchor(self, anchor: AuditAnchor) -> None:
        """Record a head the ledger accepted. Recording the same size again fills in a missing
        transaction hash or block number; another head for a recorded size conflicts."""
        if not isinstance(anchor.size, int) or anchor.size < 1:
            raise FormatError("anchored audit size must be a positive integer")
        if not isinstance(anchor.head, bytes) or len(anchor.head) != 32:
            raise FormatError("anchored audit head must be 32 bytes")
        if anchor.tx_hash is not None and len(anchor.tx_hash) != 32:
            raise FormatError("transaction hash must be 32 bytes")
        with self._transaction(write=True) as s:
            row = s.get(AuditAnchorRow, (self._log_id, anchor.size))
            if row is None:
                s.add(
                    AuditAnchorRow(
                        log_id=self._log_id,
                        size=anchor.size,
                        head=anchor.head,
                        tx_hash=anchor.tx_hash,
                        block_number=anchor.block_number,
                        created_at=anchor.created_at or self._clock.now(),
                    )
                )
                return
            if row.head != anchor.head:
                raise ConflictError(
                    f"audit head of size {anchor.size} is recorded as {row.head.hex()}, not "
                    f"{anchor.head.hex()}"
                )
            if anchor.tx_hash is not None:
                row.tx_hash = anchor.tx_hash
            if anchor.block_number is not None:
                row.block_number = anchor.block_number

    def anchors(self) -> list[AuditAnchor]:
        """Recorded anchors by increasing size."""
        with self._transaction() as s:
            rows = s.scalars(
                select(AuditAnchorRow)
                .where(AuditAnchorRow.log_id == self._log_id)
                .order_by(AuditAnchorRow.size)
            )
            return [_anchor(r) for r in rows]

    def latest_anchor(self) -> AuditAnchor | None:
        """The recorded anchor of greatest size."""
        with self._transaction() as s:
            row = s.scalar(
                select(AuditAnchorRow)
                .where(AuditAnchorRow.log_id == self._log_id)
                .order_by(AuditAnchorRow.size.desc())
                .limit(1)
            )
            return None if row is None else _anchor(row)

    # --- internals --------------------------------------------------------------------------

    def _transaction(self, *, write: bool = False) -> AbstractContextManager[Session]:
        return transaction(
            self._sessions,
            self._dialect,
            write=write,
            conflict=lambda _name: "the audit entry or anchor conflicts with one already stored",
            what="audit log operation",
        )


if TYPE_CHECKING:

    def _implements_the_port(store: SqlAuditStore) -> AuditStore:
        return store  # mypy proves SqlAuditStore satisfies the AuditStore protocol


def _entry(row: AuditEntryRow) -> AuditEntry:
    return AuditEntry(
        seq=row.seq,
        at=row.at,
        actor=row.actor,
        action=row.action,
        target=row.target,
        detail_json=row.detail,
        prev_hash=bytes(row.prev_hash),
        entry_hash=bytes(row.entry_hash),
    )


def _anchor(row: AuditAnchorRow) -> AuditAnchor:
    return AuditAnchor(
        size=row.size,
        head=bytes(row.head),
        tx_hash=None if row.tx_hash is None else bytes(row.tx_hash),
        block_number=row.block_number,
        created_at=row.created_at,
    )
