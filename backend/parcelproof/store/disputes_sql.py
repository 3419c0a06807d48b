"""SQL storage of a node's disputes (SQLite, PostgreSQL): ``disputes`` and ``dispute_notes``
rows of one courier log id. State changes are conditional updates, so two resolvers racing
on one dispute cannot both move it."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from parcelproof.core.errors import ConflictError, FormatError, NotFoundError
from parcelproof.service.disputes import (
    RESOLVED,
    DisputedEvent,
    DisputeNote,
    DisputeRecord,
)
from parcelproof.store.db import engine_of, transaction
from parcelproof.store.models import DisputeNoteRow, DisputeRow

if TYPE_CHECKING:
    from parcelproof.service.disputes import DisputeStore

__all__ = ["SqlDisputeStore"]

_MAX_LIST = 1000
#: Columns a transition may change.
_MUTABLE = frozenset(
    {
        "state",
        "assignee",
        "outcome",
        "summary_sealed",
        "summary_hash",
        "outcome_hash",
        "resolved_by",
        "resolved_at",
        "resolve_tx_hash",
        "resolve_block",
    }
)


class SqlDisputeStore:
    """The disputes of one courier log in SQL; each method is one transaction."""

    def __init__(self, sessions: sessionmaker[Session], log_id: bytes) -> None:
        if not isinstance(log_id, bytes) or len(log_id) != 32:
            raise FormatError("log id must be 32 bytes")
        self._sessions = sessions
        self._log_id = log_id
        self._dialect = engine_of(sessions).dialect.name

    def add(self, record: DisputeRecord, note: DisputeNote | None) -> None:
        if record.log_id != self._log_id:
            raise FormatError("the dispute belongs to another courier log")
        with self._transaction(write=True) as s:
            s.add(
                DisputeRow(
                    dispute_id=record.dispute_id,
                    log_id=record.log_id,
                    shipment_id=record.shipment_id,
                    tracking_sealed=record.tracking_sealed,
                    events=json.dumps([e.to_json() for e in record.events]),
                    reason=record.reason,
                    claim_salt=record.claim_salt,
                    note_hash=record.note_hash,
                    subject_hash=record.subject_hash,
                    evidence_hash=record.evidence_hash,
                    evidence_sealed=record.evidence_sealed,
                    state=record.state,
                    opened_by=record.opened_by,
                    opened_at=record.opened_at,
                    open_tx_hash=record.open_tx_hash,
                    open_block=record.open_block,
                )
            )
            s.flush()  # the note's foreign key needs the dispute first
            if note is not None:
                s.add(_note_row(note))

    def get(self, dispute_id: bytes) -> DisputeRecord | None:
        with self._transaction() as s:
            row = self._row(s, dispute_id)
            return None if row is None else _record(row)

    def newest(self, limit: int) -> list[DisputeRecord]:
        if not isinstance(limit, int) or not 1 <= limit <= _MAX_LIST:
            raise FormatError(f"limit must be between 1 and {_MAX_LIST}")
        with self._transaction() as s:
            rows = s.scalars(
                select(DisputeRow)
                .where(DisputeRow.log_id == self._log_id)
                .order_by(DisputeRow.opened_at.desc(), DisputeRow.dispute_id)
                .limit(limit)
            )
            return [_record(r) for r in rows]

    def transition(
        self, dispute_id: bytes, states: Sequence[str], changes: Mapping[str, Any]
    ) -> DisputeRecord:
        unknown = set(changes) - _MUTABLE
        if unknown:
            raise FormatError(f"a dispute transition may not change {sorted(unknown)}")
        with self._transaction(write=True) as s:
            done = s.execute(
                update(DisputeRow)
                .where(
                    DisputeRow.log_id == self._log_id,
                    DisputeRow.dispute_id == dispute_id,
                    DisputeRow.state.in_(list(states)),
                )
                .values(**changes)
                .execution_options(synchronize_session=False)
            )
            row = self._row(s, dispute_id)
            if row is None:
                raise NotFoundError("no dispute with this id")
            if getattr(done, "rowcount", 0) != 1:
                raise ConflictError(_wrong_state(row.state))
            s.refresh(row)
            return _record(row)

    def add_note(self, note: DisputeNote, states: Sequence[str]) -> None:
        with self._transaction(write=True) as s:
            # Lock the dispute row (PostgreSQL) so a resolve cannot slip in between.
            row = s.scalar(
                select(DisputeRow)
                .where(DisputeRow.log_id == self._log_id, DisputeRow.dispute_id == note.dispute_id)
                .with_for_update()
            )
            if row is None:
                raise NotFoundError("no dispute with this id")
            if row.state not in states:
                raise ConflictError(_wrong_state(row.state))
            s.add(_note_row(note))

    def notes(self, dispute_id: bytes) -> list[DisputeNote]:
        with self._transaction() as s:
            if self._row(s, dispute_id) is None:
                raise NotFoundError("no dispute with this id")
            rows = s.scalars(
                select(DisputeNoteRow)
                .where(DisputeNoteRow.dispute_id == dispute_id)
                .order_by(DisputeNoteRow.created_at, DisputeNoteRow.note_id)
            )
            return [
                DisputeNote(
                    note_id=r.note_id,
                    dispute_id=r.dispute_id,
                    kind=r.kind,
                    author=r.author,
                    created_at=r.created_at,
                    sealed=r.sealed,
                )
                for r in rows
            ]

    # --- internals ----------------------------------------------------------------------------

    def _row(self, s: Session, dispute_id: bytes) -> DisputeRow | None:
        return s.scalar(
            select(DisputeRow).where(
                DisputeRow.log_id == self._log_id, DisputeRow.dispute_id == dispute_id
            )
        )

    def _transaction(self, *, write: bool = False) -> AbstractContextManager[Session]:
        return transaction(
            self._sessions,
            self._dialect,
            write=write,
            conflict=lambda _name: "a dispute with this id already exists",
            what="dispute store operation",
        )


def _wrong_state(state: str) -> str:
    if state == RESOLVED:
        return "the dispute is already resolved"
    return f"the dispute is {state}: this step is not allowed now"


def _note_row(note: DisputeNote) -> DisputeNoteRow:
    return DisputeNoteRow(
        note_id=note.note_id,
        dispute_id=note.dispute_id,
        kind=note.kind,
        author=note.author,
        created_at=note.created_at,
        sealed=note.sealed,
    )


def _record(row: DisputeRow) -> DisputeRecord:
    return DisputeRecord(
        dispute_id=row.dispute_id,
        log_id=row.log_id,
        shipment_id=row.shipment_id,
        tracking_sealed=row.tracking_sealed,
        events=tuple(DisputedEvent.from_json(e) for e in json.loads(row.events)),
        reason=row.reason,
        claim_salt=row.claim_salt,
        note_hash=row.note_hash,
        subject_hash=row.subject_hash,
        evidence_hash=row.evidence_hash,
        evidence_sealed=row.evidence_sealed,
        state=row.state,
        opened_by=row.opened_by,
        opened_at=row.opened_at,
        open_tx_hash=row.open_tx_hash,
        open_block=row.open_block,
        assignee=row.assignee,
        outcome=row.outcome,
        summary_sealed=row.summary_sealed,
        summary_hash=row.summary_hash,
        outcome_hash=row.outcome_hash,
        resolved_by=row.resolved_by,
        resolved_at=row.resolved_at,
        resolve_tx_hash=row.resolve_tx_hash,
        resolve_block=row.resolve_block,
    )


if TYPE_CHECKING:

    def _sql_store_is_a_dispute_store(store: SqlDisputeStore) -> DisputeStore:
        return store  # mypy proves the adapter satisfies the port
