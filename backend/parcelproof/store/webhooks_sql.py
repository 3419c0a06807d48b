"""SQL implementation of the webhook port: subscriptions, the delivery outbox, attempts, cursors."""

from __future__ import annotations

from contextlib import AbstractContextManager

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from parcelproof.core.envelope import WrappedKey
from parcelproof.core.errors import FormatError
from parcelproof.service.ports import CheckpointRecord
from parcelproof.service.webhooks import (
    CHECKPOINT_ANCHORED,
    OPEN_STATES,
    STATUS_CHANGED,
    Attempt,
    Delivery,
    EventSource,
    Subscription,
    new_id,
    webhook_event_id,
)
from parcelproof.store.db import engine_of, transaction
from parcelproof.store.models import (
    CheckpointRow,
    EventRow,
    LogStateRow,
    ShipmentRow,
    WebhookAttemptRow,
    WebhookCursorRow,
    WebhookDeliveryRow,
    WebhookSubscriptionRow,
)

#: Cursor kinds: the next leaf index to announce, and the largest checkpoint size announced.
EVENTS_CURSOR = "events"
CHECKPOINTS_CURSOR = "checkpoints"
_LANDED = ("anchored", "confirmed")


class SqlWebhookStore:
    """Webhooks of one courier log in SQL; each method is one transaction."""

    def __init__(self, sessions: sessionmaker[Session], log_id: bytes) -> None:
        if not isinstance(log_id, bytes) or len(log_id) != 32:
            raise FormatError("log id must be 32 bytes")
        self._sessions = sessions
        self._log_id = log_id
        self._dialect = engine_of(sessions).dialect.name

    @property
    def log_id(self) -> bytes:
        return self._log_id

    # --- subscriptions ----------------------------------------------------------------------

    def add_subscription(self, subscription: Subscription) -> None:
        with self._transaction(write=True) as s:
            self._cursors(s)  # from now on: a subscription gets what happens after it
            s.add(
                WebhookSubscriptionRow(
                    subscription_id=subscription.subscription_id,
                    log_id=self._log_id,
                    url=subscription.url,
                    event_types=",".join(subscription.event_types),
                    description=subscription.description,
                    secret_sealed=subscription.secret_sealed,
                    created_by=subscription.created_by,
                    created_at=subscription.created_at,
                    deleted_at=subscription.deleted_at,
                )
            )

    def subscription(self, subscription_id: str) -> Subscription | None:
        with self._transaction() as s:
            row = s.get(WebhookSubscriptionRow, subscription_id)
            if row is None or row.log_id != self._log_id or row.deleted_at is not None:
                return None
            return _subscription(row)

    def subscriptions(self, *, include_deleted: bool = False) -> list[Subscription]:
        with self._transaction() as s:
            query = select(WebhookSubscriptionRow).where(
                WebhookSubscriptionRow.log_id == self._log_id
            )
            if not include_deleted:
                query = query.where(WebhookSubscriptionRow.deleted_at.is_(None))
            rows = s.scalars(
                query.order_by(
                    WebhookSubscriptionRow.created_at, WebhookSubscriptionRow.subscription_id
                )
            )
            return [_subscription(r) for r in rows]

    def delete_subscription(self, subscription_id: str, at: int) -> bool:
        with self._transaction(write=True) as s:
            done = s.execute(
                update(WebhookSubscriptionRow)
                .where(
                    WebhookSubscriptionRow.subscription_id == subscription_id,
                    WebhookSubscriptionRow.log_id == self._log_id,
                    WebhookSubscriptionRow.deleted_at.is_(None),
                )
                .values(deleted_at=at)
            )
            if _rowcount(done) != 1:
                return False
            s.execute(
                update(WebhookDeliveryRow)
                .where(
                    WebhookDeliveryRow.subscription_id == subscription_id,
                    WebhookDeliveryRow.state.in_(OPEN_STATES),
                )
                .values(state="cancelled", next_attempt_at=None)
            )
            return True

    def set_secret(self, subscription_id: str, sealed: bytes) -> None:
        with self._transaction(write=True) as s:
            s.execute(
                update(WebhookSubscriptionRow)
                .where(
                    WebhookSubscriptionRow.subscription_id == subscription_id,
                    WebhookSubscriptionRow.log_id == self._log_id,
                )
                .values(secret_sealed=sealed)
            )

    # --- the outbox -------------------------------------------------------------------------

    def fan_out(self, now: int, limit: int) -> int:
        """Queue a delivery per matching subscription for each event past the events cursor
        (by leaf index: appends serialise on the log, so indices commit in order) and each
        landed checkpoint larger than the checkpoints cursor; move both cursors. The cursor
        rows are locked for the transaction (FOR UPDATE; SQLite's write lock), so concurrent
        dispatchers in several processes queue each event once. A read comes first: with
        nothing past the cursors no write lock is taken (the dispatcher polls every second)."""
        if not self._anything_new():
            return 0
        with self._transaction(write=True) as s:
            cursors = self._cursors(s, lock=True)
            subs = list(
                s.scalars(
                    select(WebhookSubscriptionRow).where(
                        WebhookSubscriptionRow.log_id == self._log_id,
                        WebhookSubscriptionRow.deleted_at.is_(None),
                    )
                )
            )
            queued = 0
            events = s.execute(
                select(EventRow.event_id, EventRow.leaf_index, EventRow.recorded_at)
                .where(
                    EventRow.log_id == self._log_id,
                    EventRow.leaf_index >= cursors[EVENTS_CURSOR].position,
                )
                .order_by(EventRow.leaf_index)
                .limit(limit)
            ).all()
            for event_id, leaf_index, recorded_at in events:
                queued += self._queue(s, subs, STATUS_CHANGED, event_id, recorded_at, now)
                cursors[EVENTS_CURSOR].position = leaf_index + 1
            checkpoints = s.execute(
                select(CheckpointRow.size, CheckpointRow.updated_at)
                .where(
                    CheckpointRow.log_id == self._log_id,
                    CheckpointRow.status.in_(_LANDED),
                    CheckpointRow.size > cursors[CHECKPOINTS_CURSOR].position,
                )
                .order_by(CheckpointRow.size)
                .limit(limit)
            ).all()
            for size, updated_at in checkpoints:
                queued += self._queue(s, subs, CHECKPOINT_ANCHORED, str(size), updated_at, now)
                cursors[CHECKPOINTS_CURSOR].position = size
            return queued

    def _anything_new(self) -> bool:
        with self._transaction() as s:
            found = {
                r.kind: r.position
                for r in s.scalars(
                    select(WebhookCursorRow).where(WebhookCursorRow.log_id == self._log_id)
                )
            }
            if len(found) < 2:
                return True  # the cursors are created (at the log's position) under the lock
            size = s.scalar(select(LogStateRow.size).where(LogStateRow.log_id == self._log_id))
            landed = s.scalar(
                select(func.max(CheckpointRow.size)).where(
                    CheckpointRow.log_id == self._log_id, CheckpointRow.status.in_(_LANDED)
                )
            )
            return (size or 0) > found[EVENTS_CURSOR] or (landed or 0) > found[CHECKPOINTS_CURSOR]

    def add_delivery(self, delivery: Delivery) -> None:
        with self._transaction(write=True) as s:
            s.add(_delivery_row(delivery, self._log_id))

    def due(self, now: int, limit: int) -> list[Delivery]:
        with self._transaction() as s:
            rows = s.scalars(
                select(WebhookDeliveryRow)
                .where(
                    WebhookDeliveryRow.log_id == self._log_id,
                    WebhookDeliveryRow.state.in_(OPEN_STATES),
                    WebhookDeliveryRow.next_attempt_at <= now,
                )
                .order_by(WebhookDeliveryRow.next_attempt_at, WebhookDeliveryRow.created_at)
                .limit(limit)
            )
            return [_delivery(r) for r in rows]

    def claim(self, delivery_id: str, expected_next: int | None, lease_until: int) -> bool:
        """Take a due delivery for one attempt: move its next try to ``lease_until`` if it is
        still open and still at ``expected_next`` (compare-and-set: one dispatcher wins)."""
        with self._transaction(write=True) as s:
            done = s.execute(
                update(WebhookDeliveryRow)
                .where(
                    WebhookDeliveryRow.delivery_id == delivery_id,
                    WebhookDeliveryRow.log_id == self._log_id,
                    WebhookDeliveryRow.state.in_(OPEN_STATES),
                    WebhookDeliveryRow.next_attempt_at == expected_next,
                )
                .values(next_attempt_at=lease_until)
            )
            return _rowcount(done) == 1

    def record_attempt(
        self, delivery_id: str, attempt: Attempt, state: str, next_attempt_at: int | None
    ) -> None:
        with self._transaction(write=True) as s:
            s.add(
                WebhookAttemptRow(
                    delivery_id=delivery_id,
                    attempt=attempt.attempt,
                    at=attempt.at,
                    status_code=attempt.status_code,
                    error=attempt.error[:200] if attempt.error else None,
                    duration_ms=attempt.duration_ms,
                )
            )
            # A delivery cancelled meanwhile (its subscription deleted) stays cancelled.
            s.execute(
                update(WebhookDeliveryRow)
                .where(
                    WebhookDeliveryRow.delivery_id == delivery_id,
                    WebhookDeliveryRow.log_id == self._log_id,
                    WebhookDeliveryRow.state.in_(OPEN_STATES),
                )
                .values(
                    attempts=attempt.attempt,
                    state=state,
                    next_attempt_at=next_attempt_at,
                    last_attempt_at=attempt.at,
                )
            )

    def delivery(self, delivery_id: str) -> Delivery | None:
        with self._transaction() as s:
            row = s.get(WebhookDeliveryRow, delivery_id)
            if row is None or row.log_id != self._log_id:
                return None
            return _delivery(row, _attempts(s, [delivery_id]).get(delivery_id, ()))

    def deliveries(self, subscription_id: str, limit: int) -> list[Delivery]:
        with self._transaction() as s:
            rows = list(
                s.scalars(
                    select(WebhookDeliveryRow)
                    .where(
                        WebhookDeliveryRow.log_id == self._log_id,
                        WebhookDeliveryRow.subscription_id == subscription_id,
                    )
                    .order_by(WebhookDeliveryRow.created_at.desc(), WebhookDeliveryRow.delivery_id)
                    .limit(limit)
                )
            )
            history = _attempts(s, [r.delivery_id for r in rows])
            return [_delivery(r, history.get(r.delivery_id, ())) for r in rows]

    # --- sources of bodies ------------------------------------------------------------------

    def event_source(self, event_id: str) -> EventSource | None:
        with self._transaction() as s:
            found = s.execute(
                select(EventRow, ShipmentRow.wrapped_key_kid, ShipmentRow.wrapped_key_blob)
                .join(ShipmentRow, ShipmentRow.shipment_id == EventRow.shipment_id)
                .where(EventRow.event_id == event_id, EventRow.log_id == self._log_id)
            ).first()
            if found is None:
                return None
            row, kid, blob = found
            return EventSource(
                event_id=row.event_id,
                shipment_id=row.shipment_id,
                sequence=row.sequence,
                event_time=row.event_time,
                recorded_at=row.recorded_at,
                leaf_index=row.leaf_index,
                commitment=row.commitment,
                sealed_openings=row.sealed_openings,
                wrapped_key=WrappedKey(kid, blob) if blob else None,
            )

    def checkpoint(self, size: int) -> CheckpointRecord | None:
        with self._transaction() as s:
            row = s.get(CheckpointRow, (self._log_id, size))
            if row is None:
                return None
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

    # --- internals --------------------------------------------------------------------------

    def _cursors(self, s: Session, *, lock: bool = False) -> dict[str, WebhookCursorRow]:
        """The log's cursor rows, created at the log's current position when missing (so a
        first subscription is not sent the log's history)."""
        query = select(WebhookCursorRow).where(WebhookCursorRow.log_id == self._log_id)
        if lock:
            query = query.with_for_update()
        found = {r.kind: r for r in s.scalars(query)}
        if len(found) == 2:
            return found
        size = s.scalar(select(LogStateRow.size).where(LogStateRow.log_id == self._log_id))
        landed = s.scalar(
            select(func.max(CheckpointRow.size)).where(
                CheckpointRow.log_id == self._log_id, CheckpointRow.status.in_(_LANDED)
            )
        )
        for kind, position in ((EVENTS_CURSOR, size or 0), (CHECKPOINTS_CURSOR, landed or 0)):
            if kind not in found:
                row = WebhookCursorRow(log_id=self._log_id, kind=kind, position=position)
                s.add(row)
                found[kind] = row
        s.flush()
        return found

    def _queue(
        self,
        s: Session,
        subs: list[WebhookSubscriptionRow],
        event_type: str,
        source: str,
        happened_at: int,
        now: int,
    ) -> int:
        queued = 0
        for sub in subs:
            if event_type not in sub.event_types.split(",") or happened_at < sub.created_at:
                continue
            s.add(
                _delivery_row(
                    Delivery(
                        delivery_id=new_id("dlv"),
                        subscription_id=sub.subscription_id,
                        event_id=webhook_event_id(self._log_id, event_type, source),
                        event_type=event_type,
                        source=source,
                        created_at=happened_at,
                        state="pending",
                        attempts=0,
                        next_attempt_at=now,
                        last_attempt_at=None,
                    ),
                    self._log_id,
                )
            )
            queued += 1
        return queued

    def _transaction(self, *, write: bool = False) -> AbstractContextManager[Session]:
        return transaction(
            self._sessions,
            self._dialect,
            write=write,
            conflict=lambda _name: "the webhook record conflicts with one stored",
            what="webhook store operation",
        )


def _rowcount(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _subscription(row: WebhookSubscriptionRow) -> Subscription:
    return Subscription(
        subscription_id=row.subscription_id,
        url=row.url,
        event_types=tuple(t for t in row.event_types.split(",") if t),
        description=row.description,
        secret_sealed=row.secret_sealed,
        created_by=row.created_by,
        created_at=row.created_at,
        deleted_at=row.deleted_at,
    )


def _delivery_row(d: Delivery, log_id: bytes) -> WebhookDeliveryRow:
    return WebhookDeliveryRow(
        delivery_id=d.delivery_id,
        subscription_id=d.subscription_id,
        log_id=log_id,
        event_id=d.event_id,
        event_type=d.event_type,
        source=d.source,
        created_at=d.created_at,
        state=d.state,
        attempts=d.attempts,
        next_attempt_at=d.next_attempt_at,
        last_attempt_at=d.last_attempt_at,
    )


def _delivery(row: WebhookDeliveryRow, history: tuple[Attempt, ...] = ()) -> Delivery:
    return Delivery(
        delivery_id=row.delivery_id,
        subscription_id=row.subscription_id,
        event_id=row.event_id,
        event_type=row.event_type,
        source=row.source,
        created_at=row.created_at,
        state=row.state,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_attempt_at=row.last_attempt_at,
        history=history,
    )


def _attempts(s: Session, delivery_ids: list[str]) -> dict[str, tuple[Attempt, ...]]:
    if not delivery_ids:
        return {}
    rows = s.scalars(
        select(WebhookAttemptRow)
        .where(WebhookAttemptRow.delivery_id.in_(delivery_ids))
        .order_by(WebhookAttemptRow.delivery_id, WebhookAttemptRow.attempt)
    )
    found: dict[str, list[Attempt]] = {}
    for r in rows:
        found.setdefault(r.delivery_id, []).append(
            Attempt(r.attempt, r.at, r.status_code, r.error, r.duration_ms)
        )
    return {k: tuple(v) for k, v in found.items()}
