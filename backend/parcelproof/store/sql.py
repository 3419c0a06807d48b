"""SQL implementation of the Store port (SQLite, PostgreSQL): one courier log per ``log_id``."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    CursorResult,
    Engine,
    Row,
    Select,
    Table,
    any_,
    bindparam,
    func,
    insert,
    select,
    text,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from parcelproof.core.envelope import WrappedKey
from parcelproof.core.errors import (
    ConflictError,
    FormatError,
    IndexOutOfRangeError,
    NotFoundError,
    StoreError,
)
from parcelproof.core.merkle import HASH_SIZE, node_hash
from parcelproof.service.ports import (
    AnchoredCheckpoint,
    ApiClientRecord,
    CheckpointRecord,
    Clock,
    ErasureRecord,
    EventRecord,
    ShipmentErasedError,
    ShipmentRecord,
    SystemClock,
)

if TYPE_CHECKING:
    from parcelproof.service.ports import Store
from parcelproof.store.db import engine_of, transaction
from parcelproof.store.models import (
    CHECKPOINT_STATUSES,
    ApiClientRow,
    CheckpointRow,
    ErasureRow,
    EventRow,
    LogNodeRow,
    LogStateRow,
    ShipmentRow,
)

__all__ = [
    "ANCHORED_STATUSES",
    "ApiClientRecord",
    "CheckpointRecord",
    "SqlStore",
    "StoreError",
]

ANCHORED_STATUSES = ("anchored", "confirmed")
_NODE_BATCH = 400  # coordinates per query (two bound parameters each)
_MAX_LEVEL = 63
_INT64 = (-(1 << 63), (1 << 63) - 1)
log = logging.getLogger("parcelproof.store")


class SqlStore:
    """Shipments, events, Merkle log, checkpoints and API clients of one courier log in SQL.

    Several logs may share a database; every row carries its ``log_id``. Each method runs in
    its own transaction. Appends serialise on the log's ``log_state`` row (``SELECT … FOR
    UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite). Driver failures surface as
    :class:`StoreError`, unique-constraint violations as :class:`ConflictError`.
    """

    def __init__(
        self, sessions: sessionmaker[Session], log_id: bytes, *, clock: Clock | None = None
    ) -> None:
        if not isinstance(log_id, bytes) or len(log_id) != 32:
            raise FormatError("log id must be 32 bytes")
        self._sessions = sessions
        self._log_id = log_id
        self._clock = clock or SystemClock()
        self._engine: Engine = engine_of(sessions)
        self._dialect = self._engine.dialect.name
        self._pinned = threading.local()  # the read transaction of snapshot(), per thread

    @property
    def log_id(self) -> bytes:
        return self._log_id

    # --- shipments --------------------------------------------------------------------------

    def add_shipment(self, record: ShipmentRecord) -> None:
        with self._transaction(write=True) as s:
            taken = s.scalar(
                select(ShipmentRow.shipment_id).where(
                    ShipmentRow.log_id == self._log_id, ShipmentRow.ref == record.ref
                )
            )
            if taken is not None:
                raise ConflictError("a shipment with this tracking number already exists")
            if s.get(ShipmentRow, record.shipment_id) is not None:
                raise ConflictError(f"shipment {record.shipment_id} already exists")
            s.add(
                ShipmentRow(
                    shipment_id=record.shipment_id,
                    log_id=self._log_id,
                    ref=record.ref,
                    wrapped_key_kid=record.wrapped_key.kid,
                    wrapped_key_blob=record.wrapped_key.blob,
                    sealed_details=record.sealed_details,
                    sealed_factor=record.sealed_factor,
                    created_at=record.created_at,
                )
            )

    def wrapped_keys(self, not_kid: str) -> list[tuple[str, WrappedKey]]:
        """(shipment id, wrapped data key) of every shipment whose key is wrapped under a
        key-encryption key other than ``not_kid`` (erased shipments have no key left)."""
        with self._transaction() as s:
            rows = s.execute(
                select(
                    ShipmentRow.shipment_id,
                    ShipmentRow.wrapped_key_kid,
                    ShipmentRow.wrapped_key_blob,
                )
                .where(
                    ShipmentRow.log_id == self._log_id,
                    ShipmentRow.wrapped_key_kid != not_kid,
                    ShipmentRow.wrapped_key_blob.is_not(None),
                )
                .order_by(ShipmentRow.shipment_id)
            )
            return [(sid, WrappedKey(kid=kid, blob=blob or b"")) for sid, kid, blob in rows]

    def set_wrapped_key(self, shipment_id: str, wrapped: WrappedKey) -> None:
        """Replace a shipment's wrapped data key (key rotation; the data is untouched). An
        erased shipment keeps no key: a rotation that read its key before the erasure must
        not bring it back, so the update only touches a key that is still there."""
        with self._transaction(write=True) as s:
            updated = _rowcount(
                s.execute(
                    update(ShipmentRow)
                    .where(
                        ShipmentRow.shipment_id == shipment_id,
                        ShipmentRow.log_id == self._log_id,
                        ShipmentRow.wrapped_key_blob.is_not(None),
                    )
                    .values(wrapped_key_kid=wrapped.kid, wrapped_key_blob=wrapped.blob)
                    .execution_options(synchronize_session=False)
                )
            )
            if updated == 0 and self._shipment_id(s, shipment_id) is None:
                raise NotFoundError(f"no shipment {shipment_id} in this log")

    def destroy_data_key(
        self, erasure: ErasureRecord, *, event_count: int, last_commitment: bytes
    ) -> ErasureRecord:
        """Crypto-shred a shipment: set its wrapped data key to NULL and insert its
        ``erasures`` row in one transaction, serialised with appends on the log's lock.
        Idempotent (an erased shipment returns its first record); ConflictError if the
        shipment's chain moved past ``event_count`` / ``last_commitment``.

        SQLite: the transaction runs with ``secure_delete`` (the freed bytes of the old key
        are zeroed, not left in the page), and afterwards the WAL is checkpointed and
        truncated, so the old wrapped key leaves the database files, not only the rows.
        PostgreSQL keeps the old row version until VACUUM (see docs/privacy.md)."""
        with self._transaction(write=True) as s:
            self._lock_log(s)
            if self._dialect == "sqlite":
                s.execute(text("PRAGMA secure_delete = ON"))
            if self._shipment_id(s, erasure.shipment_id) is None:
                raise NotFoundError(f"no shipment {erasure.shipment_id} in this log")
            existing = s.get(ErasureRow, erasure.shipment_id)
            if existing is not None:
                return _erasure(existing)
            last = s.execute(
                select(EventRow.sequence, EventRow.commitment)
                .where(EventRow.shipment_id == erasure.shipment_id)
                .order_by(EventRow.sequence.desc())
                .limit(1)
            ).one_or_none()
            count, previous = (0, bytes(32)) if last is None else (last[0] + 1, last[1])
            if count != event_count or previous != last_commitment:
                raise ConflictError("the shipment got another event while it was being erased")
            s.execute(
                update(ShipmentRow)
                .where(ShipmentRow.shipment_id == erasure.shipment_id)
                .values(wrapped_key_blob=None)
                .execution_options(synchronize_session=False)
            )
            s.add(
                ErasureRow(
                    shipment_id=erasure.shipment_id,
                    log_id=self._log_id,
                    erased_at=erasure.erased_at,
                    reason=erasure.reason,
                    receipt=erasure.receipt,
                )
            )
        if self._dialect == "sqlite":
            self._truncate_wal()
        return erasure

    def erasure(self, shipment_id: str) -> ErasureRecord | None:
        """The shipment's erasure record, if its keys were destroyed."""
        with self._transaction() as s:
            row = s.get(ErasureRow, shipment_id)
            return None if row is None or row.log_id != self._log_id else _erasure(row)

    def idle_shipments(self, before: int, limit: int) -> list[ShipmentRecord]:
        """Up to ``limit`` shipments not erased whose last activity (latest event recorded,
        else creation) lies before ``before``, oldest first (the retention job's input)."""
        latest = (
            select(EventRow.shipment_id, func.max(EventRow.recorded_at).label("last"))
            .where(EventRow.log_id == self._log_id)
            .group_by(EventRow.shipment_id)
            .subquery()
        )
        activity = func.coalesce(latest.c.last, ShipmentRow.created_at)
        query = (
            select(ShipmentRow)
            .outerjoin(latest, latest.c.shipment_id == ShipmentRow.shipment_id)
            .outerjoin(ErasureRow, ErasureRow.shipment_id == ShipmentRow.shipment_id)
            .where(
                ShipmentRow.log_id == self._log_id,
                ShipmentRow.wrapped_key_blob.is_not(None),
                ErasureRow.shipment_id.is_(None),
                activity < before,
            )
            .order_by(activity, ShipmentRow.shipment_id)
            .limit(max(limit, 0))
        )
        with self._transaction() as s:
            return [_shipment(r) for r in s.scalars(query)]

    def shipment_by_ref(self, ref: bytes) -> ShipmentRecord | None:
        with self._transaction() as s:
            row = s.execute(_SHIPMENT_BY_REF, {"log": self._log_id, "ref": ref}).one_or_none()
            return None if row is None else _shipment(row)

    # --- events -----------------------------------------------------------------------------

    def events(self, shipment_id: str) -> list[EventRecord]:
        """The shipment's events ordered by sequence."""
        with self._transaction() as s:
            rows = s.execute(_EVENTS_OF, {"log": self._log_id, "shipment": shipment_id})
            return [_event(r) for r in rows]

    def last_event(self, shipment_id: str) -> EventRecord | None:
        """The shipment's latest event (greatest sequence), if any."""
        with self._transaction() as s:
            row = s.scalar(
                select(EventRow)
                .where(EventRow.log_id == self._log_id, EventRow.shipment_id == shipment_id)
                .order_by(EventRow.sequence.desc())
                .limit(1)
            )
            return None if row is None else _event(row)

    def event_by_id(self, event_id: str) -> EventRecord | None:
        with self._transaction() as s:
            row = s.get(EventRow, event_id)
            return None if row is None or row.log_id != self._log_id else _event(row)

    def append_event(self, record: EventRecord, leaf_hash: bytes) -> EventRecord:
        """Atomically append: the record's sequence must be the shipment's next and its
        previous the last commitment (else ConflictError); the store assigns the leaf index
        (the log's size), stores the leaf and every completed subtree hash, and returns the
        record with its leaf index. ``record.leaf_index`` is ignored on input. An unknown
        shipment raises NotFoundError."""
        if not isinstance(leaf_hash, bytes) or len(leaf_hash) != HASH_SIZE:
            raise FormatError(f"leaf hash must be {HASH_SIZE} bytes")
        with self._transaction(write=True) as s:
            size = self._lock_log(s)
            known = s.execute(
                select(ShipmentRow.shipment_id, ShipmentRow.wrapped_key_blob.is_(None)).where(
                    ShipmentRow.shipment_id == record.shipment_id,
                    ShipmentRow.log_id == self._log_id,
                )
            ).one_or_none()
            if known is None:
                raise NotFoundError(f"no shipment {record.shipment_id} on this log")
            if known[1]:
                raise ShipmentErasedError(
                    "the shipment's details were erased: no event can be recorded for it"
                )
            last = s.execute(
                select(EventRow.sequence, EventRow.commitment)
                .where(EventRow.shipment_id == record.shipment_id)
                .order_by(EventRow.sequence.desc())
                .limit(1)
            ).one_or_none()
            count, previous = (0, bytes(32)) if last is None else (last[0] + 1, last[1])
            if record.sequence != count or record.previous != previous:
                raise ConflictError(f"sequence {record.sequence} of this shipment is already taken")
            if s.get(EventRow, record.event_id) is not None:
                raise ConflictError(f"event {record.event_id} already exists")
            stored = replace(record, leaf_index=size)
            s.add(_event_row(stored, self._log_id))
            s.execute(insert(LogNodeRow), self._new_nodes(s, size, leaf_hash))
            s.execute(
                update(LogStateRow)
                .where(LogStateRow.log_id == self._log_id)
                .values(size=LogStateRow.size + 1)
            )
        return stored

    def shipments_by_refs(self, refs: Sequence[bytes]) -> dict[bytes, ShipmentRecord]:
        found: dict[bytes, ShipmentRecord] = {}
        with self._transaction() as s:
            for chunk in _chunks(list(dict.fromkeys(refs))):
                rows = s.execute(
                    select(*ShipmentRow.__table__.columns).where(
                        ShipmentRow.log_id == self._log_id, self._among(ShipmentRow.ref, chunk)
                    )
                )
                found.update((r.ref, _shipment(r)) for r in rows)
        return found

    def events_by_ids(self, event_ids: Sequence[str]) -> dict[str, EventRecord]:
        found: dict[str, EventRecord] = {}
        with self._transaction() as s:
            for chunk in _chunks(list(dict.fromkeys(event_ids))):
                rows = s.execute(
                    select(*EventRow.__table__.columns).where(
                        EventRow.log_id == self._log_id, self._among(EventRow.event_id, chunk)
                    )
                )
                found.update((r.event_id, _event(r)) for r in rows)
        return found

    def last_events(self, shipment_ids: Sequence[str]) -> dict[str, EventRecord]:
        found: dict[str, EventRecord] = {}
        with self._transaction() as s:
            for chunk in _chunks(list(dict.fromkeys(shipment_ids))):
                latest = (
                    select(EventRow.shipment_id, func.max(EventRow.sequence).label("sequence"))
                    .where(
                        EventRow.log_id == self._log_id, self._among(EventRow.shipment_id, chunk)
                    )
                    .group_by(EventRow.shipment_id)
                    .subquery()
                )
                rows = s.execute(
                    select(*EventRow.__table__.columns).join(
                        latest,
                        (EventRow.shipment_id == latest.c.shipment_id)
                        & (EventRow.sequence == latest.c.sequence),
                    )
                )
                found.update((r.shipment_id, _event(r)) for r in rows)
        return found

    def append_events(self, items: Sequence[tuple[EventRecord, bytes]]) -> list[EventRecord]:
        """Append many events in one transaction (see the Store port): one lock of the log,
        one read of the shipments' tips and of the log's right edge, batched inserts."""
        for _, leaf_hash in items:
            if not isinstance(leaf_hash, bytes) or len(leaf_hash) != HASH_SIZE:
                raise FormatError(f"leaf hash must be {HASH_SIZE} bytes")
        if not items:
            return []
        shipment_ids = list(dict.fromkeys(r.shipment_id for r, _ in items))
        event_ids = [r.event_id for r, _ in items]
        if len(set(event_ids)) != len(event_ids):
            raise ConflictError("an event id appears twice in the batch")
        with self._transaction(write=True) as s:
            size = self._lock_log(s)
            erased: dict[str, bool] = {}
            tips: dict[str, tuple[int, bytes]] = {}
            for chunk in _chunks(shipment_ids):
                for sid, is_erased in s.execute(
                    select(ShipmentRow.shipment_id, ShipmentRow.wrapped_key_blob.is_(None)).where(
                        ShipmentRow.log_id == self._log_id,
                        self._among(ShipmentRow.shipment_id, chunk),
                    )
                ):
                    erased[sid] = bool(is_erased)
                latest = (
                    select(EventRow.shipment_id, func.max(EventRow.sequence).label("sequence"))
                    .where(self._among(EventRow.shipment_id, chunk))
                    .group_by(EventRow.shipment_id)
                    .subquery()
                )
                for sid, sequence, commitment in s.execute(
                    select(EventRow.shipment_id, EventRow.sequence, EventRow.commitment).join(
                        latest,
                        (EventRow.shipment_id == latest.c.shipment_id)
                        & (EventRow.sequence == latest.c.sequence),
                    )
                ):
                    tips[sid] = (sequence + 1, commitment)
            for sid in shipment_ids:
                if sid not in erased:
                    raise NotFoundError(f"no shipment {sid} on this log")
                if erased[sid]:
                    raise ShipmentErasedError(
                        "the shipment's details were erased: no event can be recorded for it"
                    )
            for chunk in _chunks(event_ids):
                taken = s.scalar(
                    select(EventRow.event_id).where(self._among(EventRow.event_id, chunk))
                )
                if taken is not None:
                    raise ConflictError(f"event {taken} already exists")
            stored: list[EventRecord] = []
            for offset, (record, _) in enumerate(items):
                count, previous = tips.get(record.shipment_id, (0, bytes(32)))
                if record.sequence != count or record.previous != previous:
                    raise ConflictError(
                        f"sequence {record.sequence} of this shipment is already taken"
                    )
                tips[record.shipment_id] = (count + 1, record.commitment)
                stored.append(replace(record, leaf_index=size + offset))
            nodes = self._append_nodes(s, size, [h for _, h in items])
            # Core inserts (the ORM's bulk path cost more than the database's work).
            s.execute(insert(_EVENTS_TABLE), [_event_values(r, self._log_id) for r in stored])
            for start in range(0, len(nodes), 1000):
                s.execute(insert(_NODES_TABLE), nodes[start : start + 1000])
            s.execute(
                update(LogStateRow)
                .where(LogStateRow.log_id == self._log_id)
                .values(size=LogStateRow.size + len(items))
            )
        return stored

    # --- Merkle log -------------------------------------------------------------------------

    def log_size(self) -> int:
        with self._transaction() as s:
            size = s.scalar(select(LogStateRow.size).where(LogStateRow.log_id == self._log_id))
            return 0 if size is None else size

    def node(self, level: int, index: int) -> bytes:
        """Hash of the perfect subtree at (level, index); level 0 are leaf hashes."""
        _check_coord(level, index)
        with self._transaction() as s:
            found = s.scalar(
                select(LogNodeRow.hash).where(
                    LogNodeRow.log_id == self._log_id,
                    LogNodeRow.level == level,
                    LogNodeRow.index == index,
                )
            )
        if found is None:
            raise IndexOutOfRangeError(f"no subtree at level {level} index {index}")
        return found

    def nodes(self, coords: Sequence[tuple[int, int]]) -> list[bytes]:
        """Hashes of many perfect subtrees, in the order asked, read in one query (per 400)."""
        for level, index in coords:
            _check_coord(level, index)
        wanted = list(dict.fromkeys(coords))
        with self._transaction() as s:
            found = self._read_nodes(s, wanted)
        missing = next((c for c in coords if c not in found), None)
        if missing is not None:
            raise IndexOutOfRangeError(f"no subtree at level {missing[0]} index {missing[1]}")
        return [found[c] for c in coords]

    # --- checkpoints ------------------------------------------------------------------------

    def add_checkpoint(self, checkpoint: AnchoredCheckpoint) -> None:
        """Record a checkpoint the ledger accepted (status ``anchored``). A ``sent`` row of the
        same size is promoted; a ``confirmed`` one stays confirmed; another root conflicts."""
        _check_checkpoint(checkpoint.size, checkpoint.root, checkpoint.tx_hash)
        now = self._clock.now()
        with self._transaction(write=True) as s:
            row = s.get(CheckpointRow, (self._log_id, checkpoint.size))
            if row is None:
                s.add(
                    CheckpointRow(
                        log_id=self._log_id,
                        size=checkpoint.size,
                        root=checkpoint.root,
                        tx_hash=checkpoint.tx_hash,
                        block_number=checkpoint.block_number,
                        status="anchored",
                        nonce=None,
                        created_at=now,
                        updated_at=now,
                    )
                )
                return
            _same_root(row, checkpoint.root)
            if row.status == "sent":
                row.status = "anchored"
            if checkpoint.tx_hash is not None:
                row.tx_hash = checkpoint.tx_hash
            if checkpoint.block_number is not None:
                row.block_number = checkpoint.block_number
            row.updated_at = now

    def latest_checkpoint(self) -> AnchoredCheckpoint | None:
        """The anchored or confirmed checkpoint of greatest size."""
        with self._transaction() as s:
            row = s.scalar(
                self._checkpoint_query()
                .where(CheckpointRow.status.in_(ANCHORED_STATUSES))
                .order_by(CheckpointRow.size.desc())
                .limit(1)
            )
            return None if row is None else _checkpoint(row).anchored()

    def record_sent_checkpoint(self, size: int, root: bytes, tx_hash: bytes, nonce: int) -> None:
        """Note that a checkpoint transaction was broadcast. Sending again (a replacement
        transaction) updates tx hash and nonce; a checkpoint already anchored or with another
        root conflicts."""
        _check_checkpoint(size, root, tx_hash)
        if not isinstance(nonce, int) or nonce < 0:
            raise FormatError("nonce must be a non-negative integer")
        now = self._clock.now()
        with self._transaction(write=True) as s:
            row = s.get(CheckpointRow, (self._log_id, size))
            if row is None:
                s.add(
                    CheckpointRow(
                        log_id=self._log_id,
                        size=size,
                        root=root,
                        tx_hash=tx_hash,
                        block_number=None,
                        status="sent",
                        nonce=nonce,
                        created_at=now,
                        updated_at=now,
                    )
                )
                return
            _same_root(row, root)
            if row.status != "sent":
                raise ConflictError(f"checkpoint of size {size} is already {row.status}")
            row.tx_hash, row.nonce, row.updated_at = tx_hash, nonce, now

    def mark_checkpoint(self, size: int, status: str, block_number: int | None = None) -> None:
        """Move a checkpoint to ``status``. ``sent`` clears the block number (a reorg);
        otherwise a given block number is stored and None keeps the one known."""
        if status not in CHECKPOINT_STATUSES:
            raise FormatError(
                f"checkpoint status {status!r} is not one of {', '.join(CHECKPOINT_STATUSES)}"
            )
        with self._transaction(write=True) as s:
            row = s.get(CheckpointRow, (self._log_id, size))
            if row is None:
                raise NotFoundError(f"no checkpoint of size {size}")
            row.status = status
            if status == "sent":
                row.block_number = None
            elif block_number is not None:
                row.block_number = block_number
            row.updated_at = self._clock.now()

    def landed_checkpoints(
        self, leaf_indices: Sequence[int], at_most: int | None = None
    ) -> list[CheckpointRecord]:
        leaves = sorted(set(leaf_indices))
        params: dict[str, Any] = {"log": self._log_id, "at_most": at_most}
        params.update((f"leaf{i}", leaf) for i, leaf in enumerate(leaves))
        with self._transaction() as s:
            rows = s.execute(_landed_statement(len(leaves), at_most is not None), params)
            cited = {row.size: _checkpoint(row) for row in rows}
        return [cited[size] for size in sorted(cited)]

    def checkpoints(self, status: str | None = None) -> list[CheckpointRecord]:
        """Checkpoints by increasing size, all or those with ``status``."""
        if status is not None and status not in CHECKPOINT_STATUSES:
            raise FormatError(
                f"checkpoint status {status!r} is not one of {', '.join(CHECKPOINT_STATUSES)}"
            )
        query = self._checkpoint_query().order_by(CheckpointRow.size)
        if status is not None:
            query = query.where(CheckpointRow.status == status)
        with self._transaction() as s:
            return [_checkpoint(r) for r in s.scalars(query)]

    # --- the staff console's reads ----------------------------------------------------------

    def shipment_count(self) -> int:
        with self._transaction() as s:
            count = s.scalar(
                select(func.count())
                .select_from(ShipmentRow)
                .where(ShipmentRow.log_id == self._log_id)
            )
            return int(count or 0)

    def newest_shipments(self, offset: int, limit: int) -> list[ShipmentRecord]:
        query = (
            select(*ShipmentRow.__table__.columns)
            .where(ShipmentRow.log_id == self._log_id)
            .order_by(ShipmentRow.created_at.desc(), ShipmentRow.shipment_id.desc())
            .offset(max(offset, 0))
            .limit(max(limit, 0))
        )
        with self._transaction() as s:
            return [_shipment(r) for r in s.execute(query)]

    def event_at_leaf(self, leaf_index: int) -> EventRecord | None:
        with self._transaction() as s:
            row = s.execute(
                select(*EventRow.__table__.columns).where(
                    EventRow.log_id == self._log_id, EventRow.leaf_index == leaf_index
                )
            ).one_or_none()
            return None if row is None else _event(row)

    def newest_checkpoints(self, limit: int) -> list[CheckpointRecord]:
        query = self._checkpoint_query().order_by(CheckpointRow.size.desc()).limit(max(limit, 0))
        with self._transaction() as s:
            return [_checkpoint(r) for r in s.scalars(query)]

    # --- API clients ------------------------------------------------------------------------

    def add_api_client(
        self, client_id: str, name: str, secret_hash: bytes, scopes: Sequence[str]
    ) -> ApiClientRecord:
        """Register a client by the hash of its secret; a taken client id conflicts."""
        if isinstance(scopes, str):
            raise FormatError("scopes must be a sequence of names, not one string")
        for scope in scopes:
            if not scope or "," in scope or scope.strip() != scope:
                raise FormatError(f"scope {scope!r} must be non-empty, without commas or spaces")
        if not isinstance(secret_hash, bytes) or not secret_hash:
            raise FormatError("secret hash must be non-empty bytes")
        row = ApiClientRow(
            client_id=client_id,
            log_id=self._log_id,
            name=name,
            secret_hash=secret_hash,
            scopes=",".join(sorted(set(scopes))),
            created_at=self._clock.now(),
            revoked_at=None,
        )
        with self._transaction(write=True) as s:
            if s.get(ApiClientRow, client_id) is not None:
                raise ConflictError(f"API client {client_id} already exists")
            s.add(row)
        return _api_client(row)

    def api_client(self, client_id: str) -> ApiClientRecord | None:
        """The client, revoked or not; None if unknown to this log."""
        with self._transaction() as s:
            row = s.get(ApiClientRow, client_id)
            return None if row is None or row.log_id != self._log_id else _api_client(row)

    def revoke_api_client(self, client_id: str) -> None:
        """Revoke a client; revoking again keeps the first revocation time."""
        with self._transaction(write=True) as s:
            row = s.get(ApiClientRow, client_id)
            if row is None or row.log_id != self._log_id:
                raise NotFoundError(f"no API client {client_id}")
            if row.revoked_at is None:
                row.revoked_at = self._clock.now()

    # --- coordination -----------------------------------------------------------------------

    @contextmanager
    def advisory_lock(self, key: int) -> Iterator[bool]:
        """Try to take an exclusive lock named ``key`` for the ``with`` block; yield whether
        it was acquired (never waits). It is released on exit.

        PostgreSQL: ``pg_try_advisory_lock`` on a dedicated autocommit connection, so the
        lock holds across processes and machines and dies with the connection. SQLite: always
        acquired — a SQLite database serves a single process, which must run one worker.
        """
        if not isinstance(key, int) or not _INT64[0] <= key <= _INT64[1]:
            raise FormatError("advisory lock key must be a signed 64-bit integer")
        if self._dialect != "postgresql":
            yield True
            return
        try:
            connection = self._engine.connect()
        except SQLAlchemyError as e:
            raise StoreError(f"cannot take advisory lock {key}: {type(e).__name__}") from e
        try:
            connection.execution_options(isolation_level="AUTOCOMMIT")
            sql = text("SELECT pg_try_advisory_lock(:key)")
            acquired = bool(connection.scalar(sql, {"key": key}))
        except SQLAlchemyError as e:
            connection.close()
            raise StoreError(f"cannot take advisory lock {key}: {type(e).__name__}") from e
        if not acquired:
            connection.close()
            yield False
            return
        try:
            yield True
        finally:
            try:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            except SQLAlchemyError:
                connection.invalidate()  # the server drops the lock with the session
            finally:
                connection.close()

    # --- internals --------------------------------------------------------------------------

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Run the reads of this block (in this thread) in one read transaction: one
        connection and one consistent view of the log instead of a transaction per read.
        Writes inside the block still take their own transaction."""
        if getattr(self._pinned, "session", None) is not None:
            yield  # already inside one
            return
        with self._transaction() as s:
            self._pinned.session = s
            try:
                yield
            finally:
                self._pinned.session = None

    def _among(self, column: Any, values: list[Any]) -> ColumnElement[bool]:
        """``column IN values``; on PostgreSQL ``= ANY(array)``, one parameter however many
        values (a 500-value IN list made the driver parse a long statement every time)."""
        if self._dialect == "postgresql":
            return cast(
                ColumnElement[bool], column == any_(bindparam(None, values, ARRAY(column.type)))
            )
        return cast(ColumnElement[bool], column.in_(values))

    def _transaction(self, *, write: bool = False) -> AbstractContextManager[Session]:
        pinned: Session | None = getattr(self._pinned, "session", None)
        if pinned is not None and not write:
            return nullcontext(pinned)
        return transaction(self._sessions, self._dialect, write=write, conflict=_conflict_meaning)

    def _lock_log(self, s: Session) -> int:
        """Lock the log's state row (creating it at size 0) and return the log's size."""
        query = select(LogStateRow.size).where(LogStateRow.log_id == self._log_id)
        if self._dialect == "postgresql":
            query = query.with_for_update()
        size = s.scalar(query)
        if size is None:
            values = {"log_id": self._log_id, "size": 0}
            if self._dialect == "postgresql":
                s.execute(pg_insert(LogStateRow).values(values).on_conflict_do_nothing())
            else:
                s.execute(sqlite_insert(LogStateRow).values(values).on_conflict_do_nothing())
            size = s.scalar(query)
            if size is None:
                raise StoreError("the log's state row vanished while locking it")
        return size

    def _new_nodes(self, s: Session, index: int, leaf_hash: bytes) -> list[dict[str, Any]]:
        """Rows for leaf ``index`` and every perfect subtree it completes (as MemoryLog)."""
        siblings: list[tuple[int, int]] = []
        level, i = 0, index
        while i & 1:
            siblings.append((level, i - 1))
            level, i = level + 1, i >> 1
        found = self._read_nodes(s, siblings)
        rows = [{"log_id": self._log_id, "level": 0, "index": index, "hash": leaf_hash}]
        h = leaf_hash
        for level, left in siblings:
            if (level, left) not in found:
                raise StoreError(f"log is corrupt: subtree at level {level} index {left} missing")
            h = node_hash(found[(level, left)], h)
            rows.append({"log_id": self._log_id, "level": level + 1, "index": left >> 1, "hash": h})
        return rows

    def _append_nodes(
        self, s: Session, size: int, leaf_hashes: Sequence[bytes]
    ) -> list[dict[str, Any]]:
        """Rows for leaves ``size``, ``size + 1``, … and every perfect subtree they complete.
        The only stored nodes they need are the log's right edge: the perfect subtree of each
        set bit of ``size``."""
        edge = [
            (level, (size >> level) - 1)
            for level in range(size.bit_length())
            if (size >> level) & 1
        ]
        known = self._read_nodes(s, edge)
        rows: list[dict[str, Any]] = []
        for index, h in enumerate(leaf_hashes, start=size):
            rows.append({"log_id": self._log_id, "level": 0, "index": index, "hash": h})
            level, i = 0, index
            while i & 1:
                left = known.get((level, i - 1))
                if left is None:
                    raise StoreError(
                        f"log is corrupt: subtree at level {level} index {i - 1} missing"
                    )
                h = node_hash(left, h)
                level, i = level + 1, i >> 1
                known[(level, i)] = h
                rows.append({"log_id": self._log_id, "level": level, "index": i, "hash": h})
            known[(0, index)] = leaf_hashes[index - size]
        return rows

    def _read_nodes(
        self, s: Session, coords: Sequence[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        found: dict[tuple[int, int], bytes] = {}
        for start in range(0, len(coords), _NODE_BATCH):
            batch = coords[start : start + _NODE_BATCH]
            params: dict[str, Any] = {"log": self._log_id}
            for i, (level, index) in enumerate(batch):
                params[f"l{i}"], params[f"i{i}"] = level, index
            rows = s.execute(_nodes_statement(len(batch), self._dialect), params)
            for level, index, h in rows:
                found[(level, index)] = h
        return found

    def _shipment_id(self, s: Session, shipment_id: str) -> str | None:
        return s.scalar(
            select(ShipmentRow.shipment_id).where(
                ShipmentRow.shipment_id == shipment_id, ShipmentRow.log_id == self._log_id
            )
        )

    def _truncate_wal(self) -> None:
        """Copy the WAL into the database file and empty it (best effort: a reader that
        holds an old snapshot makes SQLite skip it; the next erasure tries again)."""
        try:
            raw = self._engine.raw_connection()
        except SQLAlchemyError as e:
            log.warning("WAL checkpoint after an erasure skipped: %s", type(e).__name__)
            return
        try:
            cursor = raw.cursor()
            try:
                cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                busy = cursor.fetchone()
            finally:
                cursor.close()
            if busy and busy[0]:
                log.warning("WAL checkpoint after an erasure was blocked by a reader")
        except Exception as e:  # the erasure itself is committed; never fail it here
            log.warning("WAL checkpoint after an erasure failed: %s", type(e).__name__)
        finally:
            raw.close()

    def _checkpoint_query(self) -> Select[CheckpointRow]:
        return select(CheckpointRow).where(CheckpointRow.log_id == self._log_id)


if TYPE_CHECKING:

    def _implements_the_port(store: SqlStore) -> Store:
        return store  # mypy proves SqlStore satisfies the Store protocol


# --- row <-> record -----------------------------------------------------------------------------


def _shipment(row: ShipmentRow | Row[Any]) -> ShipmentRecord:
    # A destroyed data key (crypto-shredding) reads back as an empty blob: unwrapping fails.
    blob = b"" if row.wrapped_key_blob is None else row.wrapped_key_blob
    return ShipmentRecord(
        shipment_id=row.shipment_id,
        ref=row.ref,
        wrapped_key=WrappedKey(kid=row.wrapped_key_kid, blob=blob),
        sealed_details=row.sealed_details,
        sealed_factor=row.sealed_factor,
        created_at=row.created_at,
    )


def _erasure(row: ErasureRow) -> ErasureRecord:
    return ErasureRecord(
        shipment_id=row.shipment_id,
        erased_at=row.erased_at,
        reason=row.reason,
        receipt=row.receipt,
    )


def _rowcount(result: Any) -> int:
    return int(cast(CursorResult[Any], result).rowcount)


def _event(row: EventRow | Row[Any]) -> EventRecord:
    return EventRecord(
        event_id=row.event_id,
        shipment_id=row.shipment_id,
        sequence=row.sequence,
        previous=row.previous,
        commitment=row.commitment,
        leaf_index=row.leaf_index,
        event_time=row.event_time,
        agent=row.agent,
        signature=row.signature,
        sealed_openings=row.sealed_openings,
        recorded_at=row.recorded_at,
        request_digest=row.request_digest,
    )


# --- prebuilt statements of the lookup path --------------------------------------------------
# Building a SQLAlchemy statement costs more than running it on a local database (a lookup
# spent 8 ms building a union of checkpoint queries): the hot reads are built once, with
# bound parameters, per shape.

_EVENTS_TABLE = cast(Table, EventRow.__table__)
_NODES_TABLE = cast(Table, LogNodeRow.__table__)
_SHIPMENT_BY_REF = select(*ShipmentRow.__table__.columns).where(
    ShipmentRow.log_id == bindparam("log"), ShipmentRow.ref == bindparam("ref")
)
_EVENTS_OF = (
    select(*EventRow.__table__.columns)
    .where(EventRow.log_id == bindparam("log"), EventRow.shipment_id == bindparam("shipment"))
    .order_by(EventRow.sequence)
)


@functools.lru_cache(maxsize=512)
def _landed_statement(leaves: int, bounded: bool) -> CompoundSelect[Any]:
    """The checkpoints a view cites (see :meth:`SqlStore.landed_checkpoints`) in one
    statement: the latest landed, the latest confirmed, and the first above each leaf."""
    c = CheckpointRow.__table__.c
    base = select(*CheckpointRow.__table__.columns).where(
        c.log_id == bindparam("log"), c.status.in_(ANCHORED_STATUSES)
    )
    if bounded:
        base = base.where(c.size <= bindparam("at_most"))
    parts = [
        base.order_by(c.size.desc()).limit(1),
        base.where(c.status == "confirmed").order_by(c.size.desc()).limit(1),
        *(
            base.where(c.size > bindparam(f"leaf{i}")).order_by(c.size).limit(1)
            for i in range(leaves)
        ),
    ]
    # Each part a subquery: SQLite refuses LIMIT in the members of a compound select.
    return union_all(*(select(*part.subquery().c) for part in parts))


@functools.lru_cache(maxsize=1024)
def _nodes_statement(count: int, dialect: str) -> Select[Any] | CompoundSelect[Any]:
    """Read ``count`` nodes by (level, index). SQLite's planner walks all the log's nodes for
    a row-value IN, and for more than three OR-ed pairs (189 ms a proof at 10^6 leaves): there
    it is one point select per coordinate (at most 400 < SQLite's 500 compound terms)."""
    n = LogNodeRow.__table__.c
    columns = (n.level, n.index, n.hash)
    if dialect == "sqlite":
        return union_all(
            *(
                select(*columns).where(
                    n.log_id == bindparam("log"),
                    n.level == bindparam(f"l{i}"),
                    n.index == bindparam(f"i{i}"),
                )
                for i in range(count)
            )
        )
    pairs = [tuple_(bindparam(f"l{i}"), bindparam(f"i{i}")) for i in range(count)]
    return select(*columns).where(n.log_id == bindparam("log"), tuple_(n.level, n.index).in_(pairs))


def _chunks(values: list[Any], size: int = 500) -> Iterator[list[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _event_values(record: EventRecord, log_id: bytes) -> dict[str, Any]:
    return {
        "event_id": record.event_id,
        "log_id": log_id,
        "shipment_id": record.shipment_id,
        "sequence": record.sequence,
        "previous": record.previous,
        "commitment": record.commitment,
        "leaf_index": record.leaf_index,
        "event_time": record.event_time,
        "agent": record.agent,
        "signature": record.signature,
        "sealed_openings": record.sealed_openings,
        "recorded_at": record.recorded_at,
        "request_digest": record.request_digest,
    }


def _event_row(record: EventRecord, log_id: bytes) -> EventRow:
    return EventRow(
        event_id=record.event_id,
        log_id=log_id,
        shipment_id=record.shipment_id,
        sequence=record.sequence,
        previous=record.previous,
        commitment=record.commitment,
        leaf_index=record.leaf_index,
        event_time=record.event_time,
        agent=record.agent,
        signature=record.signature,
        sealed_openings=record.sealed_openings,
        recorded_at=record.recorded_at,
        request_digest=record.request_digest,
    )


def _checkpoint(row: CheckpointRow | Row[Any]) -> CheckpointRecord:
    return CheckpointRecord(
        size=row.size,
        root=row.root,
        status=row.status,
        tx_hash=row.tx_hash,
        block_number=row.block_number,
        nonce=row.nonce,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _api_client(row: ApiClientRow) -> ApiClientRecord:
    return ApiClientRecord(
        client_id=row.client_id,
        name=row.name,
        secret_hash=row.secret_hash,
        scopes=tuple(row.scopes.split(",")) if row.scopes else (),
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


# --- checks and error mapping -------------------------------------------------------------------


def _check_coord(level: int, index: int) -> None:
    if not 0 <= level <= _MAX_LEVEL or not 0 <= index <= _INT64[1]:
        raise IndexOutOfRangeError(f"no subtree at level {level} index {index}")


def _check_checkpoint(size: int, root: bytes, tx_hash: bytes | None) -> None:
    if not isinstance(size, int) or size < 1:
        raise FormatError("checkpoint size must be a positive integer")
    if not isinstance(root, bytes) or len(root) != HASH_SIZE:
        raise FormatError(f"checkpoint root must be {HASH_SIZE} bytes")
    if tx_hash is not None and (not isinstance(tx_hash, bytes) or len(tx_hash) != 32):
        raise FormatError("transaction hash must be 32 bytes")


def _same_root(row: CheckpointRow, root: bytes) -> None:
    if row.root != root:
        raise ConflictError(
            f"checkpoint of size {row.size} is recorded with root {row.root.hex()}, "
            f"not {root.hex()}"
        )


# Unique constraints by PostgreSQL name and by SQLite's column list, with what they mean.
_UNIQUE_MEANING = {
    "uq_shipments_log_id_ref": "a shipment with this tracking number already exists",
    "shipments.log_id, shipments.ref": "a shipment with this tracking number already exists",
    "pk_shipments": "a shipment with this id already exists",
    "shipments.shipment_id": "a shipment with this id already exists",
    "pk_events": "an event with this id already exists",
    "events.event_id": "an event with this id already exists",
    "uq_events_shipment_id_sequence": "this sequence of the shipment is already taken",
    "events.shipment_id, events.sequence": "this sequence of the shipment is already taken",
}


def _conflict_meaning(constraint: str) -> str:
    return _UNIQUE_MEANING.get(constraint, "the record conflicts with one already stored")
