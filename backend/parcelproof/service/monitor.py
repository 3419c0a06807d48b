"""Consortium monitor: every courier's anchoring, judged from chain data only.

A monitor needs nothing but a JSON-RPC endpoint and the ledger address: no node database, no
key. Reading and judging are kept apart:

- :class:`LedgerReader` reads the ledger's logs (only the blocks it has not read yet on each
  pass) and the courier views, and returns an immutable :class:`ChainSnapshot`;
- :func:`analyse` is pure: a snapshot, a :class:`MonitorPolicy` and ``now`` in, a
  :class:`MonitorReport` (one :class:`CourierStatus` per courier, :class:`Finding` s) out.

The rules (docs/operations.md, "Monitoring the consortium", says the same for operators):

``stalled`` (alert)
    An active courier whose latest checkpoint (or, before the first, its admission) is more
    than ``stall_after`` seconds older than ``now``, and whose node gave no sign of life on chain
    within ``stall_after`` either (a courier reinstated after a suspension: its reinstatement
    if that is later). A suspended courier cannot anchor and is not judged. The sign of life is
    an audit head: the reference anchoring
    worker anchors its node's audit-log head in the same successful cycles as checkpoints and
    on its own while that log grows, and only in cycles where anchoring the event log did not
    fail. The chain cannot tell a dead node from one without any traffic at all; such a courier
    is reported as stalled (tune ``stall_after`` for couriers with sparse traffic).
``quiet`` (notice)
    As ``stalled``, but the courier anchored an audit head after its latest checkpoint and within
    ``stall_after`` of ``now``: its worker runs, its event log just did not grow.
``late-anchoring`` (alert)
    Two consecutive checkpoints of an active courier (sizes strictly grow, so its log grew in
    between) whose *unexplained wait* exceeds ``late_after``: the time from the later of the
    previous checkpoint and the last audit head anchored between the two, to the new checkpoint.
    The chain does not know when events happened, only when anchors were mined, so this is an
    upper bound on how long the new leaves can have waited; a worker that proved alive (an audit
    head) had no leaf waiting for its anchoring interval at that time, and a suspended courier
    could not anchor, so the wait counts from the latest reinstatement in between, if any. The
    wait before a courier's first checkpoint is not judged.
``key-revoked-in-dispute`` (alert)
    An agent key revoked while a dispute is open, or at most ``revocation_window`` seconds before
    it was opened, by a courier party to that dispute: the disputed courier, or the courier whose
    account (current or earlier) opened it. Reported while the dispute is unresolved.
``anchored-after-removal`` (alert)
    A checkpoint or audit head of a removed courier in a block after its removal. The contract
    forbids it: seeing one means the address is not the ledger you think, or the chain is broken.
``account-changed``, ``courier-suspended``, ``courier-reinstated``, ``courier-removed`` (notices)
    Membership changes, for the record. Suspensions are read from the ``suspensions`` view (the
    whole history, whatever ``from_block``), so they carry a time but no block.

Findings carry a stable ``key``: a watching monitor prints each key once (a persistent condition
such as a stall is reported when it starts; a new stall after recovery has a new key).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:  # records only: this module needs no web3 at run time
    from parcelproof.chain.ledger import (
        AccountChange,
        AgentKeyEvent,
        AuditHead,
        Checkpoint,
        Courier,
        CourierMembership,
        Dispute,
        Suspension,
    )

#: Defaults of the ``monitor`` command (seconds).
STALL_AFTER = 3600
LATE_AFTER = 900
REVOCATION_WINDOW = 86400
POLL_INTERVAL = 60.0

JsonScalar = str | int | None


class Severity(StrEnum):
    """``alert``: something is wrong (the ``monitor --once`` exit status is 1); ``notice``: for
    the record."""

    ALERT = "alert"
    NOTICE = "notice"


class FindingKind(StrEnum):
    """What a finding is about (see the module docstring for each rule)."""

    STALLED = "stalled"
    LATE_ANCHORING = "late-anchoring"
    KEY_REVOKED_IN_DISPUTE = "key-revoked-in-dispute"
    ANCHORED_AFTER_REMOVAL = "anchored-after-removal"
    QUIET = "quiet"
    ACCOUNT_CHANGED = "account-changed"
    COURIER_SUSPENDED = "courier-suspended"
    COURIER_REINSTATED = "courier-reinstated"
    COURIER_REMOVED = "courier-removed"

    @property
    def severity(self) -> Severity:
        """Alert or notice."""
        return Severity.NOTICE if self in _NOTICES else Severity.ALERT


_NOTICES = frozenset(
    {
        FindingKind.QUIET,
        FindingKind.ACCOUNT_CHANGED,
        FindingKind.COURIER_SUSPENDED,
        FindingKind.COURIER_REINSTATED,
        FindingKind.COURIER_REMOVED,
    }
)

CourierState = Literal["ok", "quiet", "stalled", "suspended", "removed"]


@dataclass(frozen=True)
class MonitorPolicy:
    """Thresholds, in seconds."""

    stall_after: int = STALL_AFTER
    late_after: int = LATE_AFTER
    revocation_window: int = REVOCATION_WINDOW

    def __post_init__(self) -> None:
        if self.stall_after <= 0 or self.late_after <= 0:
            raise ValueError("stall_after and late_after must be positive")
        if self.revocation_window < 0:
            raise ValueError("revocation_window must not be negative")

    def to_json(self) -> dict[str, int]:
        return {
            "stall_after": self.stall_after,
            "late_after": self.late_after,
            "revocation_window": self.revocation_window,
        }


# --- what the chain says --------------------------------------------------------------------


@dataclass(frozen=True)
class CourierHistory:
    """One courier as the chain shows it: its view (the truth now) and its logs in the
    scanned blocks (history, oldest first)."""

    view: Courier
    membership: CourierMembership | None
    latest_audit_head: AuditHead | None
    checkpoints: tuple[Checkpoint, ...] = ()
    audit_heads: tuple[AuditHead, ...] = ()
    account_changes: tuple[AccountChange, ...] = ()
    key_events: tuple[AgentKeyEvent, ...] = ()
    suspensions: tuple[Suspension, ...] = ()  # from the view: every period, oldest first

    @property
    def courier_id(self) -> bytes:
        return self.view.courier_id

    @property
    def suspended(self) -> bool:
        """True while the courier's latest suspension lasts."""
        return bool(self.suspensions) and self.suspensions[-1].ongoing

    def reinstated_between(self, start: int, end: int) -> list[int]:
        """Reinstatement times in ``(start, end]``."""
        return [
            s.reinstated_at
            for s in self.suspensions
            if s.reinstated_at is not None and start < s.reinstated_at <= end
        ]

    @property
    def removed_block(self) -> int | None:
        """Block of the removal, if its log was read."""
        return self.membership.removed_block if self.membership else None

    @property
    def latest_checkpoint_at(self) -> int | None:
        """Time of the latest checkpoint (view or logs, whichever is newer)."""
        times = [c.anchored_at for c in self.checkpoints[-1:]]
        if self.view.latest_anchored_at is not None:
            times.append(self.view.latest_anchored_at)
        return max(times, default=None)

    @property
    def latest_audit_head_at(self) -> int | None:
        """Time of the latest audit head (view or logs, whichever is newer)."""
        times = [h.anchored_at for h in self.audit_heads[-1:] if h.anchored_at is not None]
        if self.latest_audit_head is not None and self.latest_audit_head.anchored_at:
            times.append(self.latest_audit_head.anchored_at)
        return max(times, default=None)

    def accounts(self) -> set[str]:
        """Every account known to have acted for the courier (lower case)."""
        found = {self.view.account.lower()}
        if self.membership is not None and self.membership.account:
            found.add(self.membership.account.lower())
        for change in self.account_changes:
            found |= {change.previous_account.lower(), change.new_account.lower()}
        return found


@dataclass(frozen=True)
class ChainSnapshot:
    """Everything :func:`analyse` looks at, read up to block ``block``."""

    ledger: str
    chain_id: int
    from_block: int
    block: int
    block_time: int
    couriers: tuple[CourierHistory, ...]
    disputes: tuple[Dispute, ...]


# --- what the monitor says ------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One thing to report. ``at``/``block`` locate what it is about on chain (``None`` for a
    condition such as a stall); ``key`` identifies it across passes."""

    kind: FindingKind
    courier_id: bytes
    message: str
    key: str
    at: int | None = None
    block: int | None = None
    details: Mapping[str, JsonScalar] = field(default_factory=dict)

    @property
    def severity(self) -> Severity:
        return self.kind.severity

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind.value,
            "severity": self.severity.value,
            "courier_id": _hex(self.courier_id),
            "at": self.at,
            "block": self.block,
            "message": self.message,
            "key": self.key,
            "details": dict(self.details),
        }


@dataclass(frozen=True)
class CourierStatus:
    """One row of the courier table."""

    courier_id: bytes
    account: str
    state: CourierState
    admitted_at: int
    removed_at: int | None
    checkpoints: int
    latest_size: int
    latest_checkpoint_at: int | None
    latest_checkpoint_block: int | None
    latest_audit_head_at: int | None
    idle_seconds: int | None  # since the latest checkpoint (or admission); None once removed

    def to_json(self) -> dict[str, object]:
        return {
            "courier_id": _hex(self.courier_id),
            "account": self.account,
            "state": self.state,
            "admitted_at": self.admitted_at,
            "removed_at": self.removed_at,
            "checkpoints": self.checkpoints,
            "latest_size": self.latest_size,
            "latest_checkpoint_at": self.latest_checkpoint_at,
            "latest_checkpoint_block": self.latest_checkpoint_block,
            "latest_audit_head_at": self.latest_audit_head_at,
            "idle_seconds": self.idle_seconds,
        }


@dataclass(frozen=True)
class MonitorReport:
    """The result of one analysis."""

    ledger: str
    chain_id: int
    from_block: int
    block: int
    block_time: int
    now: int
    policy: MonitorPolicy
    couriers: tuple[CourierStatus, ...]
    findings: tuple[Finding, ...]

    @property
    def alerts(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.ALERT)

    @property
    def notices(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.NOTICE)

    def to_json(self) -> dict[str, object]:
        return {
            "ledger": self.ledger,
            "chain_id": self.chain_id,
            "from_block": self.from_block,
            "block": self.block,
            "block_time": self.block_time,
            "now": self.now,
            "policy": self.policy.to_json(),
            "alerts": len(self.alerts),
            "notices": len(self.notices),
            "couriers": [c.to_json() for c in self.couriers],
            "findings": [f.to_json() for f in self.findings],
        }


# --- analysis (pure) ------------------------------------------------------------------------


def analyse(snapshot: ChainSnapshot, policy: MonitorPolicy, now: int) -> MonitorReport:
    """Judge ``snapshot`` at time ``now`` (seconds). Findings come alerts first, then by
    time."""
    statuses: list[CourierStatus] = []
    findings: list[Finding] = []
    for courier in snapshot.couriers:
        status, liveness = _liveness(courier, policy, now)
        statuses.append(status)
        findings += liveness
        findings += _late_anchoring(courier, policy)
        findings += _after_removal(courier)
        findings += _membership(courier)
    findings += _revocations_in_disputes(snapshot, policy)
    findings.sort(key=lambda f: (f.severity is not Severity.ALERT, f.at is None, f.at or 0, f.key))
    return MonitorReport(
        ledger=snapshot.ledger,
        chain_id=snapshot.chain_id,
        from_block=snapshot.from_block,
        block=snapshot.block,
        block_time=snapshot.block_time,
        now=now,
        policy=policy,
        couriers=tuple(statuses),
        findings=tuple(findings),
    )


def _liveness(
    courier: CourierHistory, policy: MonitorPolicy, now: int
) -> tuple[CourierStatus, list[Finding]]:
    view = courier.view
    checkpoint_at = courier.latest_checkpoint_at
    audit_at = courier.latest_audit_head_at
    latest_block = next(
        (c.block_number for c in courier.checkpoints[-1:] if c.size == view.latest_size), None
    )
    reference = checkpoint_at if checkpoint_at is not None else view.admitted_at
    idle = now - reference
    # A suspended courier cannot anchor: the time it could is counted from its reinstatement.
    resumed = max(courier.reinstated_between(reference, now), default=None)
    findings: list[Finding] = []
    state: CourierState = "ok"
    if not view.active:
        state = "removed"
    elif courier.suspended:
        state = "suspended"
    elif now - max(reference, resumed or reference) > policy.stall_after:
        cid = courier.courier_id
        since = (
            f"no checkpoint for {format_duration(idle)} (latest: size {view.latest_size:,})"
            if checkpoint_at is not None
            else f"no checkpoint in the {format_duration(idle)} since its admission"
        )
        if resumed is not None:
            since += f", {format_duration(now - resumed)} of them since its reinstatement"
        details: dict[str, JsonScalar] = {
            "idle_seconds": idle,
            "latest_size": view.latest_size,
            "latest_checkpoint_at": checkpoint_at,
            "latest_audit_head_at": audit_at,
        }
        if audit_at is not None and audit_at > reference and now - audit_at <= policy.stall_after:
            state = "quiet"
            message = (
                f"{since}, but its node anchored an audit head {format_duration(now - audit_at)} "
                "ago: the worker runs and the log did not grow"
            )
            findings.append(
                Finding(
                    FindingKind.QUIET,
                    cid,
                    message,
                    _key("quiet", cid, view.latest_size),
                    details=details,
                )
            )
        else:
            state = "stalled"
            alive = (
                f"; its latest audit head is {format_duration(now - audit_at)} old"
                if audit_at is not None
                else "; no audit head either"
            )
            findings.append(
                Finding(
                    FindingKind.STALLED,
                    cid,
                    since + alive,
                    _key("stalled", cid, view.latest_size),
                    details=details,
                )
            )
    status = CourierStatus(
        courier_id=courier.courier_id,
        account=view.account,
        state=state,
        admitted_at=view.admitted_at,
        removed_at=view.removed_at,
        checkpoints=view.checkpoint_count,
        latest_size=view.latest_size,
        latest_checkpoint_at=checkpoint_at,
        latest_checkpoint_block=latest_block,
        latest_audit_head_at=audit_at,
        idle_seconds=None if state == "removed" else idle,
    )
    return status, findings


def _late_anchoring(courier: CourierHistory, policy: MonitorPolicy) -> list[Finding]:
    if not courier.view.active:
        return []
    cid = courier.courier_id
    heads = [h for h in courier.audit_heads if h.block_number is not None and h.anchored_at]
    checkpoints = sorted(courier.checkpoints, key=lambda c: c.size)
    findings = []
    for previous, current in itertools.pairwise(checkpoints):
        if previous.block_number is None or current.block_number is None:
            continue
        alive = [
            h.anchored_at or 0
            for h in heads
            if previous.block_number < (h.block_number or 0) < current.block_number
        ]
        resumed = courier.reinstated_between(previous.anchored_at, current.anchored_at)
        since = max([previous.anchored_at, *alive, *resumed])
        wait = current.anchored_at - since
        if wait <= policy.late_after:
            continue
        gap = current.anchored_at - previous.anchored_at
        added = current.size - previous.size
        message = (
            f"checkpoint {previous.size:,} -> {current.size:,} (+{added:,} leaves) came "
            f"{format_duration(gap)} after the previous one"
        )
        if resumed and since == max(resumed):
            message += (
                f", {format_duration(wait)} after the courier's reinstatement in between: the "
                "new leaves may have waited that long"
            )
        elif since != previous.anchored_at:
            message += (
                f", {format_duration(wait)} after the node's last audit head in between: the new "
                f"leaves may have waited that long"
            )
        else:
            message += ", with no anchoring in between: the new leaves may have waited that long"
        findings.append(
            Finding(
                FindingKind.LATE_ANCHORING,
                cid,
                message,
                _key("late", cid, f"{previous.size}-{current.size}"),
                at=current.anchored_at,
                block=current.block_number,
                details={
                    "previous_size": previous.size,
                    "size": current.size,
                    "previous_block": previous.block_number,
                    "gap_seconds": gap,
                    "unexplained_seconds": wait,
                },
            )
        )
    return findings


def _after_removal(courier: CourierHistory) -> list[Finding]:
    removed_at = courier.view.removed_at
    if removed_at is None:
        return []
    removed_block = courier.removed_block
    cid = courier.courier_id

    def after(block: int | None, at: int | None) -> bool:
        if removed_block is not None and block is not None:
            return block > removed_block
        # Without the removal's block, only a later timestamp proves a later block.
        return at is not None and at > removed_at

    anchors: list[tuple[str, int, int | None, int | None]] = [
        ("checkpoint", c.size, c.block_number, c.anchored_at) for c in courier.checkpoints
    ]
    anchors += [("audit head", h.size, h.block_number, h.anchored_at) for h in courier.audit_heads]
    return [
        Finding(
            FindingKind.ANCHORED_AFTER_REMOVAL,
            cid,
            f"{what} of size {size:,} anchored after the courier's removal "
            f"(removed {format_time(removed_at)}): the contract forbids this; check the ledger "
            "address and the chain",
            _key("after-removal", cid, f"{what.replace(' ', '-')}-{size}"),
            at=at,
            block=block,
            details={"anchor": what, "size": size, "removed_at": removed_at},
        )
        for what, size, block, at in anchors
        if after(block, at)
    ]


def _membership(courier: CourierHistory) -> list[Finding]:
    cid = courier.courier_id
    findings = [
        Finding(
            FindingKind.ACCOUNT_CHANGED,
            cid,
            f"anchoring account changed from {c.previous_account} to {c.new_account}",
            _key("account", cid, c.tx_hash.hex()),
            at=c.changed_at,
            block=c.block_number,
            details={"previous_account": c.previous_account, "new_account": c.new_account},
        )
        for c in courier.account_changes
    ]
    for period in courier.suspensions:
        findings.append(
            Finding(
                FindingKind.COURIER_SUSPENDED,
                cid,
                f"suspended on {format_time(period.suspended_at)}: it may not anchor, and its "
                "agent keys are not valid until its reinstatement",
                _key("suspended", cid, period.suspended_at),
                at=period.suspended_at,
                details={"suspended_at": period.suspended_at},
            )
        )
        if period.reinstated_at is not None:
            findings.append(
                Finding(
                    FindingKind.COURIER_REINSTATED,
                    cid,
                    f"reinstated on {format_time(period.reinstated_at)} after a suspension of "
                    f"{format_duration(period.reinstated_at - period.suspended_at)}",
                    _key("reinstated", cid, period.reinstated_at),
                    at=period.reinstated_at,
                    details={
                        "suspended_at": period.suspended_at,
                        "reinstated_at": period.reinstated_at,
                    },
                )
            )
    removed_at = courier.view.removed_at
    if removed_at is not None:
        findings.append(
            Finding(
                FindingKind.COURIER_REMOVED,
                cid,
                f"removed from the consortium on {format_time(removed_at)}",
                _key("removed", cid),
                at=removed_at,
                block=courier.removed_block,
                details={"removed_at": removed_at},
            )
        )
    return findings


def _revocations_in_disputes(snapshot: ChainSnapshot, policy: MonitorPolicy) -> list[Finding]:
    owners = {account: c.courier_id for c in snapshot.couriers for account in c.accounts()}
    revocations = [e for c in snapshot.couriers for e in c.key_events if e.kind == "revoked"]
    findings = []
    for dispute in snapshot.disputes:
        if dispute.resolved:
            continue
        parties = {dispute.courier_id: "disputed"}
        opener = owners.get(dispute.opened_by.lower())
        if opener is not None and opener not in parties:
            parties[opener] = "opening"
        for revocation in revocations:
            role = parties.get(revocation.courier_id)
            if role is None:
                continue
            revoked_at = (
                revocation.revoked_at if revocation.revoked_at is not None else revocation.at
            )
            if revoked_at < dispute.opened_at - policy.revocation_window:
                continue
            lead = dispute.opened_at - revoked_at
            when = (
                "after the dispute was opened"
                if lead <= 0
                else f"{format_duration(lead)} before the dispute was opened"
            )
            findings.append(
                Finding(
                    FindingKind.KEY_REVOKED_IN_DISPUTE,
                    revocation.courier_id,
                    f"agent key {revocation.agent} of the {role} courier was revoked {when}; "
                    f"dispute {_hex(dispute.dispute_id)} is still open",
                    _key("revoked", dispute.dispute_id, revocation.agent.lower()),
                    at=revoked_at,
                    block=revocation.block_number,
                    details={
                        "dispute_id": _hex(dispute.dispute_id),
                        "agent": revocation.agent,
                        "role": role,
                        "disputed_courier_id": _hex(dispute.courier_id),
                        "opened_by": dispute.opened_by,
                        "opened_at": dispute.opened_at,
                        "revoked_at": revoked_at,
                    },
                )
            )
    return findings


def new_findings(report: MonitorReport, seen: set[str]) -> list[Finding]:
    """The findings of ``report`` whose key is not in ``seen``; adds their keys to it."""
    fresh = [f for f in report.findings if f.key not in seen]
    seen.update(f.key for f in fresh)
    return fresh


# --- reading the chain ----------------------------------------------------------------------


class MonitorLedger(Protocol):
    """The reads the monitor needs (:class:`~parcelproof.chain.ledger.LedgerClient` has them)."""

    @property
    def address(self) -> str: ...

    @property
    def chain_id(self) -> int: ...

    @property
    def resolver_role(self) -> bytes: ...

    def block_number(self) -> int: ...

    def block_time(self, number: int) -> int: ...

    def courier(self, courier_id: bytes) -> Courier: ...

    def suspensions(self, courier_id: bytes) -> list[Suspension]: ...

    def latest_audit_head(self, courier_id: bytes) -> AuditHead | None: ...

    def couriers(
        self, from_block: int = 0, to_block: int | str = "latest"
    ) -> list[CourierMembership]: ...

    def account_changes(
        self, courier_id: bytes | None = None, from_block: int = 0, to_block: int | str = "latest"
    ) -> list[AccountChange]: ...

    def agent_key_events(
        self, courier_id: bytes | None = None, from_block: int = 0, to_block: int | str = "latest"
    ) -> list[AgentKeyEvent]: ...

    def disputes(
        self, courier_id: bytes | None = None, from_block: int = 0, to_block: int | str = "latest"
    ) -> list[Dispute]: ...

    def checkpoints(
        self, courier_id: bytes, from_block: int = 0, to_block: int | str = "latest"
    ) -> list[Checkpoint]: ...

    def audit_heads(
        self, courier_id: bytes, from_block: int = 0, to_block: int | str = "latest"
    ) -> list[AuditHead]: ...


@dataclass
class _Logs:
    """What the reader has accumulated from the logs so far."""

    order: list[bytes] = field(default_factory=list)
    memberships: dict[bytes, CourierMembership] = field(default_factory=dict)
    checkpoints: dict[bytes, list[Checkpoint]] = field(default_factory=dict)
    audit_heads: dict[bytes, list[AuditHead]] = field(default_factory=dict)
    account_changes: list[AccountChange] = field(default_factory=list)
    key_events: list[AgentKeyEvent] = field(default_factory=list)
    disputes: dict[bytes, Dispute] = field(default_factory=dict)


class LedgerReader:
    """Reads the ledger for :func:`analyse`, incrementally: each :meth:`read` scans only the
    blocks the previous ones did not (from ``from_block`` on), then reads every known courier's
    view. Couriers are discovered from the ``CourierAdmitted`` logs and from any other log that
    names them; ``from_block`` must therefore not be later than the admission of a courier that
    has done nothing since."""

    def __init__(self, ledger: MonitorLedger, from_block: int = 0) -> None:
        if from_block < 0:
            raise ValueError("from_block must not be negative")
        self.ledger = ledger
        self.from_block = from_block
        self._next = from_block
        self._logs = _Logs()

    def check(self) -> None:
        """Fail (:class:`~parcelproof.core.errors.ChainError`) unless a ParcelLedger answers
        at the address."""
        _ = self.ledger.resolver_role

    def read(self) -> ChainSnapshot:
        """Scan the new blocks and return the snapshot up to the current head. Nothing is kept
        from a read that fails: the next one scans the same blocks again."""
        ledger = self.ledger
        head = ledger.block_number()
        logs = self._logs
        if head >= self._next:
            logs = self._scan(self._next, head)
        views = {cid: ledger.courier(cid) for cid in logs.order}
        heads = {cid: ledger.latest_audit_head(cid) for cid in logs.order}
        periods = {cid: tuple(ledger.suspensions(cid)) for cid in logs.order}
        block_time = ledger.block_time(head)
        self._logs, self._next = logs, max(self._next, head + 1)
        couriers = tuple(
            CourierHistory(
                view=views[cid],
                membership=logs.memberships.get(cid),
                latest_audit_head=heads[cid],
                checkpoints=tuple(logs.checkpoints.get(cid, ())),
                audit_heads=tuple(logs.audit_heads.get(cid, ())),
                account_changes=tuple(c for c in logs.account_changes if c.courier_id == cid),
                key_events=tuple(e for e in logs.key_events if e.courier_id == cid),
                suspensions=periods[cid],
            )
            for cid in logs.order
        )
        return ChainSnapshot(
            ledger=ledger.address,
            chain_id=ledger.chain_id,
            from_block=self.from_block,
            block=head,
            block_time=block_time,
            couriers=couriers,
            disputes=tuple(logs.disputes.values()),
        )

    def _scan(self, start: int, end: int) -> _Logs:
        """The accumulated logs plus those of blocks ``start..end`` (a new object)."""
        ledger, old = self.ledger, self._logs
        memberships = ledger.couriers(start, end)
        changes = ledger.account_changes(None, start, end)
        key_events = ledger.agent_key_events(None, start, end)
        disputes = ledger.disputes(None, start, end)
        merged_memberships = dict(old.memberships)
        for m in memberships:
            merged_memberships[m.courier_id] = _merge_membership(
                merged_memberships.get(m.courier_id), m
            )
        order = list(old.order)
        named = itertools.chain(
            (m.courier_id for m in memberships),
            (c.courier_id for c in changes),
            (e.courier_id for e in key_events),
            (d.courier_id for d in disputes),
        )
        for cid in named:
            if cid not in order:
                order.append(cid)
        checkpoints: dict[bytes, list[Checkpoint]] = {}
        audit_heads: dict[bytes, list[AuditHead]] = {}
        for cid in order:
            # A courier first named now may have anchored in blocks scanned before.
            since = start if cid in old.order else self.from_block
            checkpoints[cid] = [*old.checkpoints.get(cid, ()), *ledger.checkpoints(cid, since, end)]
            audit_heads[cid] = [*old.audit_heads.get(cid, ()), *ledger.audit_heads(cid, since, end)]
        merged_disputes = dict(old.disputes)
        merged_disputes.update((d.dispute_id, d) for d in disputes)
        return _Logs(
            order=order,
            memberships=merged_memberships,
            checkpoints=checkpoints,
            audit_heads=audit_heads,
            account_changes=[*old.account_changes, *changes],
            key_events=[*old.key_events, *key_events],
            disputes=merged_disputes,
        )


def _merge_membership(known: CourierMembership | None, new: CourierMembership) -> CourierMembership:
    """``known`` completed by ``new``, a later scan's view of the same courier."""
    if known is None:
        return new
    if new.account is not None:
        known = replace(
            known,
            account=new.account,
            admitted_at=new.admitted_at,
            admitted_block=new.admitted_block,
        )
    if new.removed_at is not None:
        known = replace(known, removed_at=new.removed_at, removed_block=new.removed_block)
    return known


# --- formatting -----------------------------------------------------------------------------


def format_duration(seconds: int) -> str:
    """``45s``, ``12m 05s``, ``2h 03m``, ``3d 04h``."""
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def format_time(timestamp: int) -> str:
    """``2026-05-01 12:00:00 UTC``."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def _key(kind: str, courier_or_dispute: bytes, *parts: object) -> str:
    return ":".join([kind, courier_or_dispute.hex(), *(str(p) for p in parts)])
