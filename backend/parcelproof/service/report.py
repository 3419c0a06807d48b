"""Dispute report for resolvers: a proof bundle read against the chain, as print-ready HTML.

:func:`build_report` takes nothing but a proof bundle and a read-only view of the ParcelLedger
contract. It runs :func:`~parcelproof.core.bundle.verify_bundle` and adds what the chain knows
about each event: the first checkpoint that anchored it (block number and block time, from the
contract's ``CheckpointAnchored`` logs), the registration of the key that signed it (validity
window, revocation) and the courier's membership. From these it derives *findings*: failed
checks, gaps and breaks in a parcel's hash chain, late anchoring, events signed outside their
key's window or after its revocation, corrections, handoffs, erased and pending events.

:func:`render_html` turns the report into one self-contained HTML document (inline CSS, no
script, A4 print rules) in which every value is escaped. Nothing here trusts a ParcelProof
server: a revealed value is shown as verified only when its event's commitment check passed.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import string
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from importlib import resources
from typing import Any, Protocol

import rfc8785

from parcelproof.core.bundle import (
    Bundle,
    BundleEvent,
    BundleLog,
    Check,
    LedgerView,
    Report,
    bundle_to_json,
    hex32,
    parse_bundle,
    verify_bundle,
)
from parcelproof.core.commitment import JsonValue
from parcelproof.core.errors import FormatError, UnknownAgentKeyError, UnknownCourierError
from parcelproof.service.ports import ChainAgentKey

#: Default threshold: an event anchored more than an hour after its event time is flagged.
LATE_AFTER = 3600
#: How far an event's time may lie after the block that anchored it (clock skew of devices).
CLOCK_SKEW = 300
#: The command that re-verifies a bundle without this report.
REVERIFY = "parcelproof verify bundle.json --rpc URL"

EVENT_CHECKS = ("hash-chain", "commitment", "signature", "agent-key", "inclusion")
HANDOFF_CHECKS = ("handoff", "handoff-countersignature")


# --- ledger reads ---------------------------------------------------------------------------


class ChainCheckpoint(Protocol):
    """A checkpoint from the contract's ``CheckpointAnchored`` logs."""

    @property
    def size(self) -> int: ...

    @property
    def root(self) -> bytes: ...

    @property
    def anchored_at(self) -> int: ...

    @property
    def block_number(self) -> int | None: ...


class ChainCourier(Protocol):
    """A courier member as the contract stores it."""

    @property
    def account(self) -> str: ...

    @property
    def admitted_at(self) -> int: ...

    @property
    def removed_at(self) -> int | None: ...


class ReportLedger(LedgerView, Protocol):
    """What the report reads from the ParcelLedger contract (``LedgerClient`` provides it)."""

    def checkpoints(self, courier_id: bytes) -> Sequence[ChainCheckpoint]: ...

    def agent_key(self, agent: str) -> ChainAgentKey: ...

    def courier(self, courier_id: bytes) -> ChainCourier: ...

    def block_number(self) -> int: ...


# --- the report -----------------------------------------------------------------------------


class Severity(StrEnum):
    """How much a finding should worry a resolver, most serious first."""

    CRITICAL = "critical"  # the evidence does not hold: a check failed or a rule was broken
    WARNING = "warning"  # the evidence holds but something is unusual: ask the courier why
    NOTICE = "notice"  # worth knowing when reading the timeline (corrections, handoffs, ...)


_RANK = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.NOTICE: 2}


@dataclass(frozen=True)
class Finding:
    """Something the resolver should look at, with a plain explanation."""

    severity: Severity
    code: str
    title: str
    explanation: str
    subject: str  # "log A event #2", "log A", "bundle"
    checks: tuple[str, ...] = ()  # the failed verification checks this finding explains


@dataclass(frozen=True)
class KeyInfo:
    """The chain's registration of an agent key (``registered=False``: none)."""

    agent: str
    registered: bool
    courier_id: bytes | None = None
    valid_from: int | None = None
    valid_until: int | None = None
    revoked_at: int | None = None


@dataclass(frozen=True)
class CourierInfo:
    """A courier's membership record on chain (``None`` fields: never admitted)."""

    account: str | None
    admitted_at: int | None
    removed_at: int | None


@dataclass(frozen=True)
class Anchoring:
    """The first checkpoint on chain whose tree contains an event's leaf."""

    checkpoint_size: int
    block_number: int | None
    block_time: int
    delay: int  # seconds from the event time to the block time
    in_bundle: bool  # the bundle carries this checkpoint (with a consistency proof if earlier)


@dataclass(frozen=True)
class EventReport:
    """One event of the timeline with what the chain says about it."""

    log_label: str
    log_id: bytes
    sequence: int
    commitment: bytes
    previous: bytes
    fields: Mapping[str, JsonValue]  # the revealed fields
    withheld: int  # how many fields only as digests
    erased: bool
    event_time: int
    agent: str
    key: KeyInfo
    leaf_index: int | None
    anchoring: Anchoring | None  # None: pending, or no chain checkpoint covers the leaf
    checks: tuple[Check, ...]

    @property
    def subject(self) -> str:
        return f"log {self.log_label} event #{self.sequence}"

    @property
    def status(self) -> str | None:
        value = self.fields.get("status")
        return value if isinstance(value, str) else None

    @property
    def verified_fields(self) -> bool:
        """True when the commitment check passed: the revealed values are what was signed."""
        return any(c.name == "commitment" and c.ok and not c.skipped for c in self.checks)

    def check(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)


@dataclass(frozen=True)
class CheckpointReport:
    """A checkpoint the bundle carries, with its block and its checks."""

    size: int
    root: bytes
    block_number: int | None
    block_time: int | None
    on_chain: Check | None  # the "checkpoint" check
    consistency: Check | None  # for an earlier checkpoint: its proof to the log's checkpoint


@dataclass(frozen=True)
class LogReport:
    """One courier log of the bundle."""

    label: str
    log_id: bytes
    shipment: bytes
    courier: CourierInfo
    checkpoint: CheckpointReport
    earlier: tuple[CheckpointReport, ...]
    chain_checkpoints: int  # how many checkpoints the courier anchored so far
    chain_latest_size: int | None
    events: int


@dataclass(frozen=True)
class HandoffSide:
    """One courier's event of a custody handoff and its two signatures."""

    event: EventReport
    countersigner: str | None  # the other courier's agent, as the event reveals it
    countersignature: Check | None
    reference: Check | None  # the "handoff" check of an accepted event's handoff_of


@dataclass(frozen=True)
class HandoffReport:
    """A custody handoff as the bundle shows it (one or both sides)."""

    handoff_id: str
    handoff_time: int | None
    from_log: str  # label, or an abbreviated id for a log outside the bundle
    to_log: str
    sides: tuple[HandoffSide, ...]


@dataclass(frozen=True)
class DisputeReport:
    """Everything the dispute report shows; built by :func:`build_report`."""

    generated_at: int
    chain_id: int
    ledger: str
    head_block: int
    bundle_sha256: bytes
    bundle_digest_of: str
    late_after: int
    logs: tuple[LogReport, ...]
    events: tuple[EventReport, ...]  # timeline order: event time, then log, then sequence
    keys: tuple[KeyInfo, ...]
    handoffs: tuple[HandoffReport, ...]
    findings: tuple[Finding, ...]  # most serious first
    verification: Report
    labels: Mapping[bytes, str] = field(default_factory=dict)  # log id -> "A", "B", ...

    @property
    def passed(self) -> int:
        return sum(1 for c in self.verification.checks if c.ok and not c.skipped)

    @property
    def failed(self) -> int:
        return len(self.verification.failures)

    @property
    def skipped(self) -> tuple[Check, ...]:
        return tuple(self.verification.skipped)

    @property
    def total(self) -> int:
        return len(self.verification.checks)

    @property
    def verdict(self) -> str:
        if not self.verification.ok:
            return "INVALID"
        return "VALID AS FAR AS CHECKED" if self.skipped else "VALID"

    @property
    def summary(self) -> str:
        """``N of M checks passed``, then the failed and skipped counts."""
        text = f"{self.passed} of {self.total} checks passed"
        if self.failed:
            text += f", {self.failed} failed"
        if self.skipped:
            text += f", {len(self.skipped)} skipped"
        return text

    def count(self, severity: Severity) -> int:
        return sum(1 for f in self.findings if f.severity is severity)

    @property
    def parcel(self) -> tuple[tuple[str, bytes], ...]:
        """The parcel's reference on each log (HMAC of the tracking number, never the number)."""
        return tuple((lg.label, lg.shipment) for lg in self.logs)


# --- building -------------------------------------------------------------------------------


def build_report(
    bundle: Bundle | Mapping[str, Any],
    ledger: ReportLedger,
    *,
    late_after: int = LATE_AFTER,
    now: int | None = None,
    bundle_sha256: bytes | None = None,
) -> DisputeReport:
    """Verify ``bundle`` against ``ledger`` and gather the chain's facts about its events.

    ``late_after`` (seconds) is the anchoring delay above which an event is flagged;
    ``now`` the generation time (default: the clock); ``bundle_sha256`` the digest of the
    bundle file as the resolver received it (default: SHA-256 of its RFC 8785 canonical form).
    Raises :class:`FormatError` on a malformed bundle and lets a
    :class:`~parcelproof.core.errors.ChainError` through (nothing can be concluded then).
    """
    if isinstance(late_after, bool) or not isinstance(late_after, int) or late_after <= 0:
        raise FormatError("the late-anchoring threshold must be a positive number of seconds")
    parsed = bundle if isinstance(bundle, Bundle) else parse_bundle(bundle)
    verification = verify_bundle(parsed, ledger)
    if bundle_sha256 is None:
        digest_of = "the bundle in RFC 8785 canonical JSON"
        bundle_sha256 = hashlib.sha256(rfc8785.dumps(bundle_to_json(parsed))).digest()
    else:
        digest_of = "the bundle file as received"
    labels = {lg.log_id: _label(i) for i, lg in enumerate(parsed.logs)}
    checks = _ChecksBySubject(verification)
    keys = _Keys(ledger)
    head = ledger.block_number()

    logs: list[LogReport] = []
    by_log: dict[str, list[EventReport]] = {}  # bundle order, for the hash-chain walk
    for lg in parsed.logs:
        label = labels[lg.log_id]
        history = sorted(ledger.checkpoints(lg.log_id), key=lambda c: c.size)
        logs.append(_log_report(lg, label, history, checks, ledger))
        bundle_sizes = {lg.checkpoint_size} | {e.size for e in lg.earlier}
        by_log[label] = [
            _event_report(lg, raw, label, history, bundle_sizes, checks, keys) for raw in lg.events
        ]
    events = sorted(
        (e for evs in by_log.values() for e in evs),
        key=lambda e: (e.event_time, e.log_label, e.sequence),
    )
    for ev in events:  # countersigners' keys too, for the key table
        agent = ev.fields.get("counterparty_agent")
        if isinstance(agent, str):
            keys.get(agent)
    handoffs = _handoffs(events, labels)
    generated = int(time.time()) if now is None else now
    findings = _Findings(labels, late_after, generated).run(
        verification, logs, by_log, events, handoffs, keys
    )
    return DisputeReport(
        generated_at=generated,
        chain_id=parsed.chain_id,
        ledger=parsed.ledger,
        head_block=head,
        bundle_sha256=bundle_sha256,
        bundle_digest_of=digest_of,
        late_after=late_after,
        logs=tuple(logs),
        events=tuple(events),
        keys=keys.all(),
        handoffs=handoffs,
        findings=findings,
        verification=verification,
        labels=labels,
    )


def _label(i: int) -> str:
    letters = string.ascii_uppercase
    return letters[i] if i < len(letters) else f"L{i + 1}"


def _prefix(log_id: bytes) -> str:
    """How verify_bundle names a log in its check subjects."""
    return f"log {hex32(log_id)[:18]}…"


class _ChecksBySubject:
    """The verifier's checks, found by what they are about."""

    def __init__(self, report: Report) -> None:
        self._by_subject: dict[str, list[Check]] = defaultdict(list)
        for c in report.checks:
            self._by_subject[c.subject].append(c)
        self._taken: Counter[str] = Counter()

    def event(self, log_id: bytes, sequence: int) -> tuple[Check, ...]:
        """The checks of the next event of ``log_id`` with this sequence number: its five event
        checks (one run per event, in bundle order, even if a sequence number repeats) and the
        handoff checks of that subject."""
        subject = f"{_prefix(log_id)} event #{sequence}"
        found = self._by_subject.get(subject, [])
        runs: list[list[Check]] = []
        for c in found:
            if c.name == "hash-chain":
                runs.append([])
            if c.name in EVENT_CHECKS and runs:
                runs[-1].append(c)
        k = self._taken[subject]
        self._taken[subject] += 1
        own = runs[k] if k < len(runs) else []
        return (*own, *(c for c in found if c.name in HANDOFF_CHECKS))

    def checkpoint(self, log_id: bytes, size: int) -> Check | None:
        found = self._by_subject.get(f"{_prefix(log_id)} size {size}", [])
        return next((c for c in found if c.name == "checkpoint"), None)

    def consistency(self, log_id: bytes, size: int, to: int) -> Check | None:
        found = self._by_subject.get(f"{_prefix(log_id)} size {size} → {to}", [])
        return next((c for c in found if c.name == "consistency"), None)


class _Keys:
    """Agent key registrations, each read once."""

    def __init__(self, ledger: ReportLedger) -> None:
        self._ledger = ledger
        self._keys: dict[str, KeyInfo] = {}

    def get(self, agent: str) -> KeyInfo:
        cached = self._keys.get(agent.lower())
        if cached is not None:
            return cached
        try:
            k = self._ledger.agent_key(agent)
            info = KeyInfo(
                agent, True, bytes(k.courier_id), k.valid_from, k.valid_until, k.revoked_at
            )
        except (UnknownAgentKeyError, FormatError):
            info = KeyInfo(agent, False)
        if info.registered and info.courier_id == bytes(32):
            info = KeyInfo(agent, False)  # the contract's empty record
        self._keys[agent.lower()] = info
        return info

    def all(self) -> tuple[KeyInfo, ...]:
        return tuple(self._keys.values())


def _courier(ledger: ReportLedger, log_id: bytes) -> CourierInfo:
    try:
        c = ledger.courier(log_id)
    except UnknownCourierError:
        return CourierInfo(None, None, None)
    return CourierInfo(str(c.account), c.admitted_at, c.removed_at)


def _log_report(
    lg: BundleLog,
    label: str,
    history: Sequence[ChainCheckpoint],
    checks: _ChecksBySubject,
    ledger: ReportLedger,
) -> LogReport:
    def block(size: int, root: bytes) -> tuple[int | None, int | None]:
        for c in history:
            if c.size == size and bytes(c.root) == root:
                return c.block_number, c.anchored_at
        return None, None

    head = CheckpointReport(
        lg.checkpoint_size,
        lg.checkpoint_root,
        *block(lg.checkpoint_size, lg.checkpoint_root),
        on_chain=checks.checkpoint(lg.log_id, lg.checkpoint_size),
        consistency=None,
    )
    earlier = tuple(
        CheckpointReport(
            e.size,
            e.root,
            *block(e.size, e.root),
            on_chain=checks.checkpoint(lg.log_id, e.size),
            consistency=checks.consistency(lg.log_id, e.size, lg.checkpoint_size),
        )
        for e in lg.earlier
    )
    return LogReport(
        label=label,
        log_id=lg.log_id,
        shipment=lg.shipment,
        courier=_courier(ledger, lg.log_id),
        checkpoint=head,
        earlier=earlier,
        chain_checkpoints=len(history),
        chain_latest_size=history[-1].size if history else None,
        events=len(lg.events),
    )


def _fields(ev: BundleEvent) -> dict[str, JsonValue]:
    try:
        return ev.disclosure.fields()
    except FormatError:  # duplicate names: the commitment check reports it
        return {o.name: o.value for o in ev.disclosure.revealed}


def _event_report(
    lg: BundleLog,
    ev: BundleEvent,
    label: str,
    history: Sequence[ChainCheckpoint],
    bundle_sizes: set[int],
    checks: _ChecksBySubject,
    keys: _Keys,
) -> EventReport:
    anchoring = None
    if ev.leaf_index is not None:
        # The contract verified every checkpoint consistent with the one before, so the first
        # checkpoint larger than the leaf index already held this very leaf.
        first = next((c for c in history if c.size > ev.leaf_index), None)
        if first is not None:
            anchoring = Anchoring(
                checkpoint_size=first.size,
                block_number=first.block_number,
                block_time=first.anchored_at,
                delay=first.anchored_at - ev.event_time,
                in_bundle=first.size in bundle_sizes,
            )
    d = ev.disclosure
    return EventReport(
        log_label=label,
        log_id=lg.log_id,
        sequence=d.sequence,
        commitment=ev.commitment,
        previous=d.previous,
        fields=_fields(ev),
        withheld=len(d.withheld),
        erased=ev.erased,
        event_time=ev.event_time,
        agent=ev.agent,
        key=keys.get(ev.agent),
        leaf_index=ev.leaf_index,
        anchoring=anchoring,
        checks=checks.event(lg.log_id, d.sequence),
    )


def _handoffs(
    events: Sequence[EventReport], labels: Mapping[bytes, str]
) -> tuple[HandoffReport, ...]:
    by_id: dict[str, list[EventReport]] = defaultdict(list)
    for ev in events:
        hid = ev.fields.get("handoff_id")
        if ev.status in ("handoff_offered", "handoff_accepted") and isinstance(hid, str):
            by_id[hid.lower()].append(ev)
    found = []
    for hid, sides in by_id.items():
        offered = next((e for e in sides if e.status == "handoff_offered"), None)
        accepted = next((e for e in sides if e.status == "handoff_accepted"), None)
        from_log = offered.log_label if offered else _other(accepted, "handoff_from", labels)
        to_log = accepted.log_label if accepted else _other(offered, "handoff_to", labels)
        when = (offered or accepted or sides[0]).fields.get("handoff_time")
        found.append(
            HandoffReport(
                handoff_id=hid,
                handoff_time=when if isinstance(when, int) and not isinstance(when, bool) else None,
                from_log=from_log,
                to_log=to_log,
                sides=tuple(
                    HandoffSide(
                        event=e,
                        countersigner=_str(e.fields.get("counterparty_agent")),
                        countersignature=e.check("handoff-countersignature"),
                        reference=e.check("handoff"),
                    )
                    for e in sides
                ),
            )
        )
    return tuple(found)


def _other(ev: EventReport | None, name: str, labels: Mapping[bytes, str]) -> str:
    value = _str(ev.fields.get(name)) if ev else None
    if value is None:
        return "?"
    for log_id, label in labels.items():
        if hex32(log_id) == value.lower():
            return label
    return _short(value)


def _plain(value: object) -> str:
    if value is None:
        return "(none)"
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


# --- findings -------------------------------------------------------------------------------

_CHECK_MEANING = {
    "ledger": (
        "the bundle names another chain or contract",
        "The bundle names another chain or contract than the one read: none of its on-chain "
        "claims were checked against the ledger it names.",
    ),
    "checkpoint": (
        "checkpoint not anchored on chain",
        "The contract holds no such checkpoint (or another root for that size): the courier "
        "never anchored what the bundle claims, so nothing in this log is vouched for.",
    ),
    "consistency": (
        "checkpoints not consistent",
        "The earlier checkpoint is not a prefix of the later one: the log was rewritten "
        "between the two, or the proof was altered.",
    ),
    "commitment": (
        "revealed values differ from what was signed",
        "The revealed values do not recompute to the committed value: they (or the time) were "
        "changed after signing. Do not rely on what this event shows.",
    ),
    "signature": (
        "signature does not verify",
        "The agent's EIP-712 signature does not match the event: the event, its time or its "
        "signer was altered, or it was never signed by that key.",
    ),
    "agent-key": (
        "key not valid for this courier then",
        "The key was not a valid key of this courier at the event time according to the contract.",
    ),
    "inclusion": (
        "not in the anchored checkpoint",
        "The audit path does not lead from the event to the anchored root: the event is not "
        "in the checkpoint the bundle claims.",
    ),
    "handoff": (
        "handoff offer missing",
        "The accepted handoff references an offer that is not in the bundle.",
    ),
    "handoff-countersignature": (
        "countersignature does not verify",
        "The other courier's countersignature on this handoff does not verify, or its key "
        "was not valid for that courier at the handoff time.",
    ),
}
# Fields a correction carries about itself, not about the parcel.
_CORRECTION_FIELDS = frozenset({"status", "time", "corrects", "corrected_status", "note"})


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


class _Findings:
    def __init__(self, labels: Mapping[bytes, str], late_after: int, now: int) -> None:
        self.labels = labels
        self.late_after = late_after
        self.now = now
        self.found: list[Finding] = []
        self.explained: set[tuple[str, str]] = set()  # (check subject, check name)

    def add(
        self,
        severity: Severity,
        code: str,
        title: str,
        explanation: str,
        subject: str,
        checks: Iterable[Check] = (),
    ) -> None:
        failed = [c for c in checks if not c.ok]
        self.explained.update((c.subject, c.name) for c in failed)
        self.found.append(
            Finding(severity, code, title, explanation, subject, tuple(c.name for c in failed))
        )

    def run(
        self,
        verification: Report,
        logs: Sequence[LogReport],
        by_log: Mapping[str, Sequence[EventReport]],
        events: Sequence[EventReport],
        handoffs: Sequence[HandoffReport],
        keys: _Keys,
    ) -> tuple[Finding, ...]:
        for label, evs in by_log.items():
            self._chain(label, evs)
            self._erased(label, evs)
        couriers = {lg.log_id: lg.courier for lg in logs}
        for ev in events:
            self._key(ev, couriers.get(ev.log_id))
            self._anchoring(ev)
        self._revoked_later(events, keys)
        self._corrections(events)
        self._handoffs(handoffs, keys, couriers)
        self._unexplained(verification)
        return tuple(sorted(self.found, key=lambda f: _RANK[f.severity]))

    # The hash chain: gaps, repeats, broken links, time order.
    def _chain(self, label: str, evs: Sequence[EventReport]) -> None:
        expected, previous, last_time = 0, bytes(32), None
        for ev in evs:
            link = [c for c in ev.checks if c.name == "hash-chain"]
            if ev.sequence > expected:
                missing = (
                    f"#{expected}"
                    if ev.sequence == expected + 1
                    else f"#{expected} to #{ev.sequence - 1}"
                )
                where = (
                    f"The bundle jumps from sequence {expected - 1} to {ev.sequence}"
                    if expected
                    else f"The parcel's first event on this log is #0; the bundle starts at "
                    f"#{ev.sequence}"
                )
                self.add(
                    Severity.CRITICAL,
                    "sequence-gap",
                    f"Event{'s' if ev.sequence > expected + 1 else ''} {missing} of log {label} "
                    "missing",
                    f"{where}. The missing events were committed (the hash chain names them) but "
                    "left out of the bundle: ask the courier for the complete list.",
                    ev.subject,
                    link,
                )
            elif ev.sequence < expected:
                self.add(
                    Severity.CRITICAL,
                    "sequence-repeat",
                    f"Event #{ev.sequence} of log {label} appears out of order or twice",
                    f"After #{expected - 1} the bundle shows #{ev.sequence} again: events were "
                    "reordered or duplicated.",
                    ev.subject,
                    link,
                )
            elif ev.previous != previous:
                self.add(
                    Severity.CRITICAL,
                    "hash-chain-break",
                    f"Hash chain of log {label} broken at event #{ev.sequence}",
                    f"Event #{ev.sequence} names {_short(hex32(ev.previous))} as the event before "
                    f"it, but the bundle's event before it committed to {_short(hex32(previous))}"
                    ": an event was replaced or inserted.",
                    ev.subject,
                    link,
                )
            if last_time is not None and ev.event_time < last_time:
                self.add(
                    Severity.WARNING,
                    "time-order",
                    f"Event #{ev.sequence} of log {label} is dated before the event preceding it",
                    f"It claims {_utc(ev.event_time)}, {_duration(last_time - ev.event_time)} "
                    "before the previous event of the parcel on this log. Nodes refuse this on "
                    "ingest: the times or the order are not what the scanners recorded.",
                    ev.subject,
                )
            expected, previous, last_time = ev.sequence + 1, ev.commitment, ev.event_time

    def _erased(self, label: str, evs: Sequence[EventReport]) -> None:
        erased = [e for e in evs if e.erased]
        if not erased:
            return
        numbers = ", ".join(f"#{e.sequence}" for e in erased)
        self.add(
            Severity.NOTICE,
            "erased",
            f"{len(erased)} event{'s' if len(erased) > 1 else ''} of log {label} erased",
            f"The courier destroyed the fields and salts of events {numbers} (crypto-shredding, "
            "e.g. on a data-subject request). Their signatures, agent keys, hash chain and "
            "anchoring still verify, so they prove that an event was signed and anchored at that "
            "time; what it said can no longer be shown (the commitment check is skipped).",
            f"log {label}",
        )

    def _key(self, ev: EventReport, courier: CourierInfo | None) -> None:
        check = [c for c in ev.checks if c.name == "agent-key"]
        for code, title, why in _key_problems(
            ev.key, ev.log_id, ev.event_time, courier, self.labels
        ):
            self.add(
                Severity.CRITICAL,
                code,
                f"{_cap(ev.subject)}: {title}",
                f"Signed by {ev.agent} at {_utc(ev.event_time)}: {why}. An event is only "
                "evidence when a key of the courier, inside its validity window, signed it.",
                ev.subject,
                check,
            )

    def _anchoring(self, ev: EventReport) -> None:
        a = ev.anchoring
        if ev.leaf_index is None:
            age = self.now - ev.event_time
            late = age > self.late_after
            self.add(
                Severity.WARNING if late else Severity.NOTICE,
                "pending",
                f"{_cap(ev.subject)} is not anchored yet",
                "The bundle was made before any checkpoint included this event, so nothing on "
                "chain vouches for it: the courier could still change or drop it. "
                + (
                    f"It is {_duration(age)} old, more than the {_duration(self.late_after)} "
                    "threshold. "
                    if late
                    else ""
                )
                + "Ask for a fresh bundle once the next checkpoint is anchored.",
                ev.subject,
            )
            return
        if a is None:
            self.add(
                Severity.WARNING,
                "anchor-unknown",
                f"No anchoring block found for {ev.subject}",
                f"The chain lists no checkpoint larger than leaf {ev.leaf_index}, although "
                "the bundle claims one (or the RPC endpoint returned no event logs).",
                ev.subject,
            )
            return
        if a.delay > self.late_after:
            self.add(
                Severity.WARNING,
                "late-anchoring",
                f"{_cap(ev.subject)} anchored {_duration(a.delay)} after the event",
                f"Dated {_utc(ev.event_time)}, first anchored in block {_block(a.block_number)} "
                f"at {_utc(a.block_time)}, later than the {_duration(self.late_after)} "
                "threshold. Until then the courier could have rewritten or dropped it unseen; a "
                "scanner that was offline explains it, a dispute may not. Ask the courier why.",
                ev.subject,
            )
        elif a.delay < -CLOCK_SKEW:
            self.add(
                Severity.WARNING,
                "time-after-anchoring",
                f"{_cap(ev.subject)} is dated after the block that anchored it",
                f"It claims {_utc(ev.event_time)} but was already anchored in block "
                f"{_block(a.block_number)} at {_utc(a.block_time)}, {_duration(-a.delay)} "
                "earlier: the event time was set in the future when it was signed.",
                ev.subject,
            )

    def _revoked_later(self, events: Sequence[EventReport], keys: _Keys) -> None:
        for key in keys.all():
            if not key.registered or key.revoked_at is None:
                continue
            signed = [e for e in events if e.agent.lower() == key.agent.lower()]
            before = [e for e in signed if e.event_time < key.revoked_at]
            if before:
                names = ", ".join(e.subject for e in before)
                last = max(e.event_time for e in before)
                self.add(
                    Severity.NOTICE,
                    "key-revoked-later",
                    f"Key {_short(key.agent)} was revoked after signing",
                    f"The key was revoked at {_utc(key.revoked_at)}, "
                    f"{_duration(key.revoked_at - last)} after the last event it signed here "
                    f"({names}). Revocation does not undo earlier signatures: these events "
                    "still count.",
                    f"key {key.agent}",
                )
            for e in before:
                a = e.anchoring
                if a is not None and a.block_time >= key.revoked_at:
                    self.add(
                        Severity.WARNING,
                        "anchored-after-revocation",
                        f"{_cap(e.subject)} was anchored only after its key was revoked",
                        f"Signed at {_utc(e.event_time)} by {key.agent}, revoked at "
                        f"{_utc(key.revoked_at)}, anchored at {_utc(a.block_time)}. Whoever "
                        "held a stolen key could date an event before its revocation: confirm "
                        "with the courier that this scan really happened.",
                        e.subject,
                    )

    def _corrections(self, events: Sequence[EventReport]) -> None:
        by_commitment = {(e.log_id, hex32(e.commitment)): e for e in events}
        for ev in events:
            target = _str(ev.fields.get("corrects"))
            if ev.status != "corrected" and target is None:
                continue
            old = by_commitment.get((ev.log_id, (target or "").lower()))
            to = _str(ev.fields.get("corrected_status"))
            if old is None:
                self.add(
                    Severity.WARNING,
                    "correction-unknown",
                    f"{_cap(ev.subject)} corrects an event that is not in the bundle",
                    f"It references {_short(target or '(nothing)')}, which is no event of this "
                    "log in the bundle: the corrected event was left out.",
                    ev.subject,
                )
                continue
            if to is None:
                change = "details"
            elif to == old.status:
                change = f"status stays {to}"
            else:
                change = f"status {old.status or '(withheld)'} → {to}"
            diffs = [
                f"{name.replace('_', ' ')} {_plain(old.fields.get(name))} → {_plain(value)}"
                for name, value in ev.fields.items()
                if name not in _CORRECTION_FIELDS and old.fields.get(name) != value
            ]
            what = f" It changes {'; '.join(diffs)}." if diffs else ""
            self.add(
                Severity.NOTICE,
                "correction",
                f"{_cap(ev.subject)} corrects {old.subject} ({change})",
                f"Recorded {_utc(ev.event_time)}, {_duration(ev.event_time - old.event_time)} "
                f"after the event it corrects, by {_short(ev.agent)}.{what} Nothing was edited: "
                f"the original {old.subject} is still in the log and still verifies; read both.",
                ev.subject,
            )

    def _handoffs(
        self,
        handoffs: Sequence[HandoffReport],
        keys: _Keys,
        couriers: Mapping[bytes, CourierInfo],
    ) -> None:
        for h in handoffs:
            sides = ", ".join(
                f"{s.event.subject} signed by {_short(s.event.agent)} and countersigned by "
                f"{_short(s.countersigner or '?')} ({_outcome(s.countersignature)})"
                for s in h.sides
            )
            when = _utc(h.handoff_time) if h.handoff_time is not None else "an unknown time"
            self.add(
                Severity.NOTICE,
                "handoff",
                f"Custody handoff from log {h.from_log} to log {h.to_log}",
                f"At {when}: {sides}. Each side's event carries the other courier's "
                "signature, so either log alone proves both agreed.",
                " / ".join(s.event.subject for s in h.sides),
            )
            if len(h.sides) == 1:
                missing = h.to_log if h.sides[0].event.status == "handoff_offered" else h.from_log
                self.add(
                    Severity.WARNING,
                    "handoff-one-sided",
                    f"Only one side of the handoff to log {h.to_log} is in the bundle"
                    if missing == h.to_log
                    else f"Only one side of the handoff from log {h.from_log} is in the bundle",
                    f"The other courier's log ({missing}) is not in the bundle. Its "
                    "countersignature still proves it agreed; ask it for its own events to see "
                    "what happened to the parcel after (or before) the handoff.",
                    h.sides[0].event.subject,
                )
            for s in h.sides:
                agent = s.countersigner
                when_signed = h.handoff_time
                if agent is None or when_signed is None:
                    continue
                other = _hex_log(
                    s.event.fields.get(
                        "handoff_to" if s.event.status == "handoff_offered" else "handoff_from"
                    )
                )
                check = [s.countersignature] if s.countersignature else []
                for code, title, why in _key_problems(
                    keys.get(agent), other, when_signed, couriers.get(other or b""), self.labels
                ):
                    self.add(
                        Severity.CRITICAL,
                        f"countersigner-{code}",
                        f"{_cap(s.event.subject)}: countersigner {title}",
                        f"{agent} countersigned the handoff at {_utc(when_signed)}: {why}.",
                        s.event.subject,
                        check,
                    )

    def _unexplained(self, verification: Report) -> None:
        for c in verification.failures:
            if (c.subject, c.name) in self.explained:
                continue
            self.explained.add((c.subject, c.name))
            title, meaning = _CHECK_MEANING.get(
                c.name, (f"check {c.name} failed", "A verification check failed.")
            )
            detail = f" Verifier: {c.detail}." if c.detail else ""
            self.found.append(
                Finding(
                    Severity.CRITICAL,
                    f"check-{c.name}",
                    f"{_cap(_subject(c.subject, self.labels))}: {title}",
                    meaning + detail,
                    _subject(c.subject, self.labels),
                    (c.name,),
                )
            )


def _hex_log(value: object) -> bytes | None:
    if not isinstance(value, str) or len(value) != 66 or not value.startswith("0x"):
        return None
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        return None


def _key_problems(
    key: KeyInfo,
    log_id: bytes | None,
    at: int,
    courier: CourierInfo | None,
    labels: Mapping[bytes, str],
) -> list[tuple[str, str, str]]:
    """Why ``key`` could not sign for ``log_id`` at ``at``: (code, title, reason) each."""
    if not key.registered:
        return [("key-unknown", "unregistered key", "the ledger has no registration for it")]
    found = []
    if log_id is not None and key.courier_id != log_id:
        owner = labels.get(key.courier_id or b"") or _short(hex32(key.courier_id or bytes(32)))
        found.append(("key-foreign", "key of another courier", f"the key is registered to {owner}"))
    if key.revoked_at is not None and at >= key.revoked_at:
        found.append(
            (
                "key-revoked",
                "signed after the key was revoked",
                f"the key was revoked at {_utc(key.revoked_at)}"
                + (f", {_duration(at - key.revoked_at)} earlier" if at > key.revoked_at else ""),
            )
        )
    if key.valid_from is not None and at < key.valid_from:
        found.append(
            (
                "key-window",
                "signed before the key's validity window",
                f"the key became valid only at {_utc(key.valid_from)}",
            )
        )
    if key.valid_until is not None and at >= key.valid_until:
        found.append(
            (
                "key-window",
                "signed after the key's validity window",
                f"the key's window closed at {_utc(key.valid_until)}",
            )
        )
    if courier is not None and courier.removed_at is not None and at >= courier.removed_at:
        found.append(
            (
                "courier-removed",
                "signed after the courier left the consortium",
                f"the courier was removed at {_utc(courier.removed_at)}",
            )
        )
    return found


def _outcome(check: Check | None) -> str:
    if check is None:
        return "not checked"
    if check.skipped:
        return "skipped"
    return "verified" if check.ok else "FAILED"


def _subject(subject: str, labels: Mapping[bytes, str]) -> str:
    for log_id, label in labels.items():
        subject = subject.replace(_prefix(log_id), f"log {label}")
    return subject


# --- formatting helpers ---------------------------------------------------------------------


def _utc(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: int) -> str:
    seconds = abs(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, s = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min" + (f" {s} s" if s else "")
    hours, m = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h" + (f" {m} min" if m else "")
    days, h = divmod(hours, 24)
    return f"{days} d" + (f" {h} h" if h else "")


def _short(value: str, head: int = 6, tail: int = 4) -> str:
    if len(value) <= head + tail + 3:
        return value
    return f"{value[:head]}…{value[-tail:]}"


def _block(number: int | None) -> str:
    return "?" if number is None else f"#{number}"


# --- rendering ------------------------------------------------------------------------------


class _Html(str):
    """Markup that is already safe: built only by :func:`_h` from escaped values."""

    __slots__ = ()


def _e(value: object) -> _Html:
    """Escape anything that is not already markup."""
    if isinstance(value, _Html):
        return value
    return _Html(html.escape(str(value), quote=True))


def _h(template: str, *args: object) -> _Html:
    """Fill a constant ``template``'s ``{}`` slots, escaping every argument."""
    return _Html(template.format(*(_e(a) for a in args)))


def _join(parts: Iterable[object], sep: str = "") -> _Html:
    return _Html(sep.join(_e(p) for p in parts))


def _resource(name: str) -> str:
    return resources.files("parcelproof.report").joinpath(name).read_text(encoding="utf-8")


_STATE = {True: ("pass", "✓"), False: ("fail", "✗")}
_SHORT_CHECK = {
    "hash-chain": "chain",
    "commitment": "commit",
    "signature": "sig",
    "agent-key": "key",
    "inclusion": "incl",
    "handoff": "handoff",
    "handoff-countersignature": "counter",
}
_LONG_HEX = re.compile(r"\b(?:0x)?[0-9a-fA-F]{40,}\b")  # shortened in findings, full below
_HEX_FIELDS = {"handoff_id", "counterparty_shipment", "counterparty_signature", "handoff_of"}


def _thead(*names: str) -> _Html:
    return _h("<thead><tr>{}</tr></thead>", _join(_h("<th>{}</th>", n) for n in names))


def _pill(check: Check | None, label: str | None = None) -> _Html:
    if check is None:
        return _h('<span class="pill none">&ndash; {}</span>', label or "")
    name = label or _SHORT_CHECK.get(check.name, check.name)
    if check.skipped:
        return _h('<span class="pill skip" title="{}">· {}</span>', check.detail, name)
    cls, mark = _STATE[check.ok]
    return _h('<span class="pill {}" title="{}">{} {}</span>', cls, check.detail, mark, name)


def _mono(value: str, short: bool = True) -> _Html:
    return _h('<span class="mono">{}</span>', _short(value) if short else value)


def _status_label(status: str | None) -> str:
    return status.replace("_", " ").capitalize() if status else "(status withheld)"


def _value(name: str, value: JsonValue, report: DisputeReport) -> _Html:
    if name in ("handoff_time", "time") and isinstance(value, int) and not isinstance(value, bool):
        return _e(_utc(value))
    if isinstance(value, str):
        if name.endswith("_sha256"):
            return _h('<span class="mono hash">{}</span>', value)
        log = _hex_log(value)
        if log is not None and log in report.labels and name in ("handoff_to", "handoff_from"):
            return _h('log {} <span class="mono">{}</span>', report.labels[log], _short(value))
        if name == "corrects":
            target = next((e for e in report.events if hex32(e.commitment) == value.lower()), None)
            if target is not None:
                return _h('{} <span class="mono">{}</span>', target.subject, _short(value))
        if value.startswith("0x") and (name in _HEX_FIELDS or len(value) > 42):
            return _mono(value)
        if name in ("counterparty_agent",) or (value.startswith("0x") and len(value) == 42):
            return _mono(value)
        return _e(value)
    return _h('<span class="mono">{}</span>', json.dumps(value, sort_keys=True))


def render_html(report: DisputeReport) -> str:
    """The report as one self-contained, print-ready HTML document (A4, no script)."""
    body = _join(
        [
            _header(report),
            _findings_section(report),
            _timeline_section(report),
            _handoffs_section(report),
            _checkpoints_section(report),
            _keys_section(report),
            _checks_section(report),
            _about_section(report),
        ]
    )
    page = string.Template(_resource("page.html"))
    return page.substitute(
        title=_e(f"Dispute report · chain {report.chain_id} · {_utc(report.generated_at)}"),
        css=_resource("report.css"),
        body=body,
    )


def _verdict_class(report: DisputeReport) -> str:
    if not report.verification.ok:
        return "invalid"
    return "partial" if report.skipped else "valid"


def _header(r: DisputeReport) -> _Html:
    parcel = _join(
        (
            _h(
                '<div><span class="tag">log {}</span> <span class="mono">{}</span></div>',
                label,
                hex32(ref),
            )
            for label, ref in r.parcel
        )
    )
    counts = _join(
        (_h('<span class="count {}">{} {}</span>', s.value, r.count(s), s.value) for s in Severity),
        " ",
    )
    skipped: _Html = _Html("")
    if r.skipped:
        groups: dict[tuple[str, str], list[str]] = defaultdict(list)
        for c in r.skipped:
            groups[(c.name, c.detail)].append(_subject(c.subject, r.labels))
        skipped = _h(
            '<p class="skipped"><strong>Skipped checks</strong> (neither passed nor failed): '
            "{}</p>",
            _join(
                (
                    _h("<strong>{}</strong> of {} &mdash; {}", name, ", ".join(subjects), reason)
                    for (name, reason), subjects in groups.items()
                ),
                "; ",
            ),
        )
    tally = [f"{r.failed} failed"] if r.failed else []
    tally += [f"{len(r.skipped)} skipped"] if r.skipped else []
    meta = _join(
        _h('<dt>{}</dt><dd class="{}">{}</dd>', k, cls, v)
        for k, v, cls in (
            ("Chain id", r.chain_id, ""),
            ("Contract", _mono(r.ledger, short=False), ""),
            ("Read at", _h("block #{} · {}", r.head_block, _utc(r.generated_at)), ""),
            ("Late after", _h("{} between event and anchoring", _duration(r.late_after)), ""),
            (
                "Bundle SHA-256",
                _h(
                    '<span class="mono">{}</span> <span class="dim">({})</span>',
                    r.bundle_sha256.hex(),
                    r.bundle_digest_of,
                ),
                "wide",
            ),
        )
    )
    return _h(
        """<header class="report-head">
  <div class="brand"><span>ParcelProof</span> &middot; dispute report</div>
  <div class="head-grid">
    <div>
      <h1>Parcel evidence report</h1>
      <p class="subtitle">Generated {} for a dispute resolver, from {} log{} and {} events.</p>
      <div class="parcel">
        <div class="label">Parcel reference on each log (HMAC of the tracking number)</div>{}
      </div>
    </div>
    <div class="verdict {}">
      <div class="verdict-word">{}</div>
      <div class="verdict-sum">{} of {} checks passed</div>
      <div class="verdict-tally">{}</div>
      <div class="counts">{}</div>
    </div>
  </div>
  {}
  <dl class="meta">{}</dl>
  <p class="provenance"><strong>Built only from the proof bundle and the chain.</strong>
  Every fact below comes from the bundle and from reads of the ParcelLedger contract {} on
  chain {}; nothing is taken from a ParcelProof server. Revealed values count only where their
  event's commitment check passed. Anyone can re-verify the bundle without this report:
  <code>{}</code></p>
</header>""",
        _utc(r.generated_at),
        len(r.logs),
        "s" if len(r.logs) > 1 else "",
        len(r.events),
        parcel,
        _verdict_class(r),
        r.verdict,
        r.passed,
        r.total,
        " · ".join(tally) if tally else "none failed, none skipped",
        counts,
        skipped,
        meta,
        _mono(r.ledger),
        r.chain_id,
        REVERIFY,
    )


def _findings_section(r: DisputeReport) -> _Html:
    if not r.findings:
        items: _Html = _h(
            '<p class="none">Nothing to highlight: every check passed and no event looks '
            "unusual.</p>"
        )
    else:
        items = _join(
            _h(
                """<article class="finding {}">
  <div class="sev">{}</div>
  <div class="finding-body"><h3>{}</h3><p>{}</p><div class="about">{}{}</div></div>
</article>""",
                f.severity.value,
                f.severity.value,
                f.title,
                _LONG_HEX.sub(lambda m: _short(m.group(0)), f.explanation),
                f.subject,
                _h(" · failed check: {}", ", ".join(f.checks)) if f.checks else "",
            )
            for f in r.findings
        )
    return _h('<section class="findings"><h2>Findings</h2>{}</section>', items)


def _event_severity(r: DisputeReport, ev: EventReport) -> str:
    ranks = [_RANK[f.severity] for f in r.findings if ev.subject in f.subject.split(" / ")]
    if not ranks or min(ranks) == _RANK[Severity.NOTICE]:
        return ""
    return "row-critical" if min(ranks) == 0 else "row-warning"


def _timeline_section(r: DisputeReport) -> _Html:
    corrected_by: dict[tuple[bytes, str], list[str]] = defaultdict(list)
    for ev in r.events:
        target = ev.fields.get("corrects")
        if ev.status == "corrected" and isinstance(target, str):
            corrected_by[(ev.log_id, target.lower())].append(f"{ev.log_label} #{ev.sequence}")
    rows = []
    for ev in r.events:
        fields = [
            _h(
                '<li><span class="k">{}</span> {}</li>',
                name.replace("_", " "),
                _value(name, value, r),
            )
            for name, value in ev.fields.items()
            if name not in ("status", "time")
        ]
        if ev.withheld:
            fields.append(
                _h(
                    '<li class="withheld">{} field{} withheld (digest only)</li>',
                    ev.withheld,
                    "s" if ev.withheld > 1 else "",
                )
            )
        if ev.erased:
            fields.append(_h('<li class="withheld">erased: fields and salts destroyed</li>'))
        status = _status_label(ev.status) if not ev.erased else "Erased event"
        flags = [
            _h('<span class="flag note">corrected by {}</span>', by)
            for by in corrected_by.get((ev.log_id, hex32(ev.commitment)), [])
        ]
        if ev.fields and not ev.verified_fields:
            flags.append(_h('<span class="flag bad">values unverified</span>'))
        unverified = _join(flags, " ")
        key = ev.key
        window = _h('<span class="bad">not registered</span>')
        if key.registered and key.valid_from is not None and key.valid_until is not None:
            window = _h("valid from {}<br>until {}", _day(key.valid_from), _day(key.valid_until))
            if key.revoked_at is not None:
                after = ev.event_time >= key.revoked_at
                window = _h(
                    '{}<br><span class="{}">revoked {}<br>({} {} this event)</span>',
                    window,
                    "bad" if after else "warn",
                    _utc(key.revoked_at),
                    _duration(key.revoked_at - ev.event_time),
                    "before" if after else "after",
                )
            if key.courier_id != ev.log_id:
                window = _h('{}<br><span class="bad">key of another courier</span>', window)
        a = ev.anchoring
        if ev.leaf_index is None:
            anchored = _h(
                '<span class="warn">pending</span><br><span class="dim">no checkpoint yet</span>'
            )
        elif a is None:
            anchored = _h('leaf {}<br><span class="warn">block unknown</span>', ev.leaf_index)
        else:
            late = a.delay > r.late_after or a.delay < -CLOCK_SKEW
            when = _hms(a.block_time)
            if _day(a.block_time) != _day(ev.event_time):
                when = f"{_day(a.block_time)} {when}"
            anchored = _h(
                'block {}<br>{}<br><span class="{}">{}{}{}</span><br>'
                '<span class="dim">size {} · leaf {}</span>',
                _block(a.block_number),
                when,
                "warn" if late else "dim",
                _Html("+" if a.delay >= 0 else "&minus;"),
                _duration(a.delay),
                " late" if late else "",
                a.checkpoint_size,
                ev.leaf_index,
            )
        checks = _join((_pill(ev.check(n)) for n in EVENT_CHECKS), " ")
        extra = [c for c in ev.checks if c.name in HANDOFF_CHECKS]
        if extra:
            checks = _h("{} {}", checks, _join((_pill(c) for c in extra), " "))
        rows.append(
            _h(
                """<tr class="{}">
  <td class="when">{}<br><strong>{}</strong></td>
  <td class="event"><span class="tag">{} #{}</span> <strong>{}</strong> {}
    <ul class="fields">{}</ul></td>
  <td class="signer">{}<br><span class="dim">{}</span></td>
  <td class="anchor">{}</td>
  <td class="checks">{}</td>
</tr>""",
                _event_severity(r, ev),
                _day(ev.event_time),
                _hms(ev.event_time),
                ev.log_label,
                ev.sequence,
                status,
                unverified,
                _join(fields),
                _mono(ev.agent),
                window,
                anchored,
                checks,
            )
        )
    return _h(
        """<section class="timeline"><h2>Timeline</h2>
<p class="lede">Every event of the bundle in time order (UTC). <em>Signed by</em> is the agent key
that signed the event and its registration on chain; <em>Anchored</em> is the first checkpoint on
chain that includes the event, with the delay after the event time. Long hashes are abbreviated;
the bundle holds them in full.</p>
<table>
{}
<tbody>{}</tbody>
</table></section>""",
        _thead(
            "When", "Event (log #sequence) and revealed fields", "Signed by", "Anchored", "Checks"
        ),
        _join(rows),
    )


def _handoffs_section(r: DisputeReport) -> _Html:
    if not r.handoffs:
        return _Html("")
    blocks = []
    for h in r.handoffs:
        sides = _join(
            _h(
                """<tr><td><span class="tag">{} #{}</span> {}</td>
<td>{}<br>{}</td><td>{}<br>{}</td><td>{}</td></tr>""",
                s.event.log_label,
                s.event.sequence,
                _status_label(s.event.status),
                _mono(s.event.agent),
                _pill(s.event.check("signature"), "signature"),
                _mono(s.countersigner or "?"),
                _pill(s.countersignature, "countersignature"),
                _pill(s.reference, "offer in bundle")
                if s.reference
                else _h('<span class="dim">—</span>'),
            )
            for s in h.sides
        )
        blocks.append(
            _h(
                """<div class="handoff">
<h3>Log {} &rarr; log {} <span class="dim">at {} · id {}</span></h3>
<table>{}<tbody>{}</tbody></table></div>""",
                h.from_log,
                h.to_log,
                _utc(h.handoff_time) if h.handoff_time is not None else "?",
                _short(h.handoff_id),
                _thead(
                    "Event",
                    "Own agent's signature",
                    "Other courier's countersignature",
                    "Reference",
                ),
                sides,
            )
        )
    return _h(
        """<section class="handoffs"><div class="keep"><h2>Custody handoffs</h2>
<p class="lede">Both agents sign the same <code>ParcelHandoff</code> at the scan; each courier's
event carries the other courier's signature, checked against that courier's key on chain.</p>
{}</div>{}</section>""",
        blocks[0],
        _join(blocks[1:]),
    )


def _checkpoint_row(cp: CheckpointReport, kind: str) -> _Html:
    return _h(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} {}</td></tr>",
        kind,
        cp.size,
        _mono(hex32(cp.root)),
        _block(cp.block_number),
        _utc(cp.block_time) if cp.block_time is not None else "?",
        _pill(cp.on_chain, "on chain"),
        _pill(cp.consistency, "consistent") if cp.consistency else "",
    )


def _checkpoints_section(r: DisputeReport) -> _Html:
    blocks = []
    for lg in r.logs:
        c = lg.courier
        member = (
            "not a member"
            if c.account is None
            else _h(
                "account {} · admitted {}{}",
                _mono(c.account),
                _utc(c.admitted_at) if c.admitted_at else "?",
                _h(' · <span class="bad">removed {}</span>', _utc(c.removed_at))
                if c.removed_at
                else "",
            )
        )
        rows = _join(
            [
                *(_checkpoint_row(e, "earlier") for e in lg.earlier),
                _checkpoint_row(lg.checkpoint, "bundle's"),
            ]
        )
        blocks.append(
            _h(
                """<div class="log">
<h3><span class="tag">log {}</span> <span class="mono small">{}</span></h3>
<p class="dim">{} · {} events of this parcel in the bundle · {} checkpoints anchored by this
courier, latest size {}</p>
<table>{}<tbody>{}</tbody></table></div>""",
                lg.label,
                hex32(lg.log_id),
                member,
                lg.events,
                lg.chain_checkpoints,
                lg.chain_latest_size if lg.chain_latest_size is not None else "?",
                _thead("Checkpoint", "Size", "Root", "Block", "Block time", "Checks"),
                rows,
            )
        )
    return _h(
        """<section class="checkpoints"><div class="keep"><h2>Checkpoints and consistency</h2>
<p class="lede">The contract accepts a checkpoint only with an RFC 9162 consistency proof from the
courier's previous one, so the log can only grow. The bundle's checkpoint must be on chain; an
earlier checkpoint carried by the bundle shows, with its consistency proof, that the events below
its size were anchored no later than its block.</p>{}</div>{}</section>""",
        blocks[0],
        _join(blocks[1:]),
    )


def _keys_section(r: DisputeReport) -> _Html:
    rows = []
    for k in r.keys:
        signed = [e.subject for e in r.events if e.agent.lower() == k.agent.lower()]
        counter = [
            e.subject
            for e in r.events
            if isinstance(e.fields.get("counterparty_agent"), str)
            and str(e.fields["counterparty_agent"]).lower() == k.agent.lower()
        ]
        owner = (
            r.labels.get(k.courier_id, _short(hex32(k.courier_id)))
            if k.registered and k.courier_id is not None
            else None
        )
        rows.append(
            _h(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                _mono(k.agent, short=False),
                _h("log {}", owner) if owner else _h('<span class="bad">unregistered</span>'),
                _utc(k.valid_from) if k.valid_from is not None else "—",
                _utc(k.valid_until) if k.valid_until is not None else "—",
                _h('<span class="warn">{}</span>', _utc(k.revoked_at)) if k.revoked_at else "—",
                _join(
                    [
                        *(_h("<div>signed {}</div>", s) for s in signed),
                        *(_h("<div>countersigned on {}</div>", s) for s in counter),
                    ]
                ),
            )
        )
    return _h(
        """<section class="keys"><h2>Agent keys</h2>
<table>{}<tbody>{}</tbody></table></section>""",
        _thead("Agent key", "Courier", "Valid from", "Valid until", "Revoked", "Used for"),
        _join(rows),
    )


def _checks_section(r: DisputeReport) -> _Html:
    rows = _join(
        _h(
            '<tr class="{}"><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>',
            "skip" if c.skipped else ("pass" if c.ok else "fail"),
            "skipped" if c.skipped else ("passed" if c.ok else "FAILED"),
            c.name,
            _subject(c.subject, r.labels),
            c.detail,
        )
        for c in r.verification.checks
    )
    return _h(
        """<section class="checks-all"><h2>All verification checks</h2>
<p class="lede">{} &mdash; exactly the checks <code>{}</code> runs (docs/proof-bundle.md,
"Verification").</p>
<table>{}<tbody>{}</tbody></table></section>""",
        r.summary,
        REVERIFY,
        _thead("Result", "Check", "About", "Detail"),
        rows,
    )


def _about_section(r: DisputeReport) -> _Html:
    return _h(
        """<section class="about-report"><h2>What this report proves, and what it does not</h2>
<p>A passed bundle proves that each courier whose account anchored a log committed, no later than
the block shown, to each event with the revealed values; that an agent key valid for that courier
at the stated time signed it; and that the parcel's events on each log form an unbroken chain from
its first event. It does not prove that a log carries no later events for the parcel than the
bundle shows (a courier could withhold a tail), nor that a scan reflects what physically happened.
Findings marked <em>warning</em> or <em>notice</em> are leads, not verdicts.</p>
<p>To check this report, re-run <code>{}</code> against chain {} and compare the result with the
summary above ({}); the bundle's SHA-256 identifies the evidence it was built from.</p>
</section>""",
        REVERIFY,
        r.chain_id,
        r.summary,
    )


def _day(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d")


def _hms(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S")
