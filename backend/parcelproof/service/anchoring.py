"""The anchoring worker: anchors checkpoints on a schedule, confirms them, survives crashes."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

from parcelproof.core.errors import (
    ChainError,
    ContractRevertError,
    Error,
    NetworkError,
    StoreError,
    VerificationError,
)
from parcelproof.service.audit import AuditAnchor, AuditLedger, AuditLog
from parcelproof.service.node import CourierNode
from parcelproof.service.ports import AnchoredCheckpoint
from parcelproof.service.privacy import RetentionJob

log = logging.getLogger("parcelproof.anchoring")


@dataclass(frozen=True)
class AnchorPolicy:
    """When to anchor and when a checkpoint counts as confirmed."""

    interval_seconds: float = 30.0  # anchor at least this often while leaves are waiting
    batch_leaves: int = 256  # ... or as soon as this many leaves are waiting
    confirmations: int = 1  # blocks (including its own) before a checkpoint is confirmed
    max_backoff_seconds: float = 60.0

    def __post_init__(self) -> None:
        if self.interval_seconds <= 0 or self.batch_leaves < 1 or self.confirmations < 1:
            raise ValueError("interval must be > 0, batch and confirmations >= 1")


@dataclass(frozen=True)
class StepResult:
    """What one cycle of the worker did."""

    anchored: AnchoredCheckpoint | None
    confirmed: tuple[int, ...]
    waiting_leaves: int
    audit: AuditAnchor | None = None  # the audit-log head anchored in this cycle, if any


class AnchorWorker:
    """Anchors one courier log. Run exactly one per log: :meth:`run` takes the store's lock.

    With an ``audit`` log, each successful cycle also anchors the audit log's head when it grew
    and a checkpoint was just anchored, the cycle was forced, or ``interval_seconds`` passed
    since the last audit anchoring (so also while no leaves wait). A failure there is logged
    and retried in a later cycle; it never stops the worker.
    """

    def __init__(
        self,
        node: CourierNode,
        policy: AnchorPolicy | None = None,
        *,
        lock: Callable[[int], AbstractContextManager[bool]] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        after_send: Callable[[], None] | None = None,
        audit: AuditLog | None = None,
        retention: RetentionJob | None = None,
    ) -> None:
        self.node = node
        self.policy = policy or AnchorPolicy()
        self._lock = lock
        self._monotonic = monotonic
        self._after_send = after_send
        self._last_anchor = monotonic()
        self.audit = audit
        self._last_audit = monotonic()
        self.retention = retention  # runs itself at most once a day; never raises
        self.failures = 0

    @property
    def lock_key(self) -> int:
        """The advisory-lock key of this courier's log (a signed 63-bit integer)."""
        return int.from_bytes(self.node.courier_id[:8], "big") >> 1

    def waiting_leaves(self) -> int:
        latest = self.node.store.latest_checkpoint()
        return self.node.store.log_size() - (latest.size if latest else 0)

    def due(self) -> bool:
        waiting = self.waiting_leaves()
        elapsed = self._monotonic() - self._last_anchor
        return waiting >= self.policy.batch_leaves or (
            waiting > 0 and elapsed >= self.policy.interval_seconds
        )

    def step(self, *, force: bool = False) -> StepResult:
        """One cycle: reconcile with the chain, anchor if due (or forced), confirm, run the
        retention rule when due (once a day). A checkpoint a reorganisation dropped from the
        chain is anchored again at once."""
        before = self.node.store.latest_checkpoint()
        self.node.reconcile()
        after = self.node.store.latest_checkpoint()
        dropped = before is not None and (after is None or after.size < before.size)
        anchored = None
        if force or dropped or self.due():
            anchored = self.node.anchor(after_send=self._after_send)
            self._last_anchor = self._monotonic()
        confirmed = self.confirm()
        if self.retention is not None:
            self.retention.run_if_due()
        audit = self.anchor_audit(force=force or anchored is not None)
        return StepResult(anchored, confirmed, self.waiting_leaves(), audit)

    def anchor_audit(self, *, force: bool = False) -> AuditAnchor | None:
        """Anchor the audit log's head if it grew, when forced or ``interval_seconds`` passed
        since the last try. Never raises a ParcelProof error: failures are logged (a tampered
        audit log as an error) and the next due cycle tries again."""
        if self.audit is None:
            return None
        if not force and self._monotonic() - self._last_audit < self.policy.interval_seconds:
            return None
        self._last_audit = self._monotonic()
        ledger = self.node.ledger
        if not isinstance(ledger, AuditLedger):
            log.warning("the ledger client cannot anchor audit heads; audit anchoring is off")
            self.audit = None
            return None
        try:
            anchored = self.audit.anchor(ledger, sender=self.node.account)
        except VerificationError as e:
            log.error("audit log not anchored: %s", e)
            return None
        except Error as e:
            reason = e.name if isinstance(e, ContractRevertError) else type(e).__name__
            log.warning("audit head not anchored (%s); retrying in a later cycle", reason)
            return None
        if anchored is not None:
            log.info("anchored audit head of size %d", anchored.size)
        return anchored

    def confirm(self) -> tuple[int, ...]:
        """Mark anchored checkpoints confirmed once ``confirmations`` blocks hold them."""
        pending = self.node.store.checkpoints("anchored")
        if not pending:
            return ()
        head = self.node.ledger.block_number()
        done = []
        for cp in pending:
            if cp.block_number is not None and head - cp.block_number + 1 >= (
                self.policy.confirmations
            ):
                self.node.store.mark_checkpoint(cp.size, "confirmed", cp.block_number)
                done.append(cp.size)
        return tuple(done)

    def backoff(self) -> float:
        """Seconds to wait after ``failures`` consecutive failures (exponential, capped)."""
        return float(min(self.policy.max_backoff_seconds, 2 ** min(self.failures, 16)))

    def run(self, stop: threading.Event, *, tick: float | None = None) -> None:
        """Hold the log's lock and loop until ``stop`` is set, a cycle every ``tick`` seconds
        (by default half the anchoring interval, at most a second); while another worker holds
        the lock, wait for it. Backs off while the chain or the database is unreachable; after
        a database failure it takes the lock again (a restarted server dropped it with the
        connection, and another worker may have taken it meanwhile)."""
        if tick is None:
            tick = min(1.0, self.policy.interval_seconds / 2)
        while not stop.is_set():
            try:
                lock = self._lock(self.lock_key) if self._lock else nullcontext(True)
                with lock as held:
                    if held:
                        self._loop(stop, tick)
                        continue
            except (NetworkError, StoreError) as e:
                self._pause(stop, e, "cannot take the log's lock")
                continue
            log.warning("another worker anchors this log; waiting for its lock")
            stop.wait(self.policy.interval_seconds)

    def _pause(self, stop: threading.Event, error: Error, what: str) -> None:
        self.failures += 1
        delay = self.backoff()
        reason = error.name if isinstance(error, ContractRevertError) else type(error).__name__
        log.warning("%s (%s); retry in %.0fs", what, reason, delay)
        stop.wait(delay)

    def _loop(self, stop: threading.Event, tick: float) -> None:
        """Cycle until ``stop`` is set, or until the database fails (then the caller takes
        the lock again once it answers)."""
        while not stop.is_set():
            try:
                result = self.step()
            except StoreError as e:
                self._pause(stop, e, "anchoring paused")
                return
            except (NetworkError, ChainError) as e:
                self._pause(stop, e, "anchoring paused")
                continue
            self.failures = 0
            if result.anchored is not None:
                log.info("anchored checkpoint of size %d", result.anchored.size)
            stop.wait(tick)
