"""The node's hash-chained audit log: every read of decrypted personal data and every privileged
action, appended as an entry that commits to the one before it; its head is anchored on chain.

Entry hash (version 1)::

    entry_hash = SHA-256(b"parcelproof/audit/v1\\x00" || prev_hash
                         || JCS({"seq", "at", "actor", "action", "target", "detail"}))

``prev_hash`` is the previous entry's hash (32 zero bytes for entry 0), JCS is RFC 8785 and
``detail`` the entry's flat JSON object. The head of a log of ``n`` entries is ``(n, hash of entry
n - 1)``; the anchoring worker puts it on the ledger (``anchorAuditHead``), after which an edit,
deletion, reordering or truncation of those ``n`` entries no longer goes unnoticed, even by
someone who rewrites the whole table and recomputes every hash. Entries appended since the last
anchor are protected by the chain of hashes only: deleting the newest of them is undetectable
until a head covering them is anchored.

**No personal data in the log.** ``actor`` and ``target`` are identifiers (a staff user id, an
API client id, a shipment id, a key id) and ``detail`` is for ids, counts and reasons: a flat
object of at most :data:`MAX_DETAIL_KEYS` snake_case keys with short string, integer, boolean or
null values. Never put a tracking number, a name, an address, a postcode, contact data or an
event's fields there. The limits are enforced (:class:`FormatError`); what a string means is the
caller's responsibility.

:func:`verify` is pure: it checks a sequence of entries against anchored heads and reports every
problem with a message; :class:`AuditLog` records entries through an :class:`AuditStore` (SQL:
:class:`parcelproof.store.audit_sql.SqlAuditStore`) and anchors its head.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import pairwise
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, runtime_checkable

import rfc8785

from parcelproof.core import jcs
from parcelproof.core.errors import AuditLogTamperedError, FormatError, StoreError
from parcelproof.service.ports import Clock, SystemClock

__all__ = [
    "ACTIONS",
    "DOMAIN_TAG",
    "ZERO_HASH",
    "AnchoredHead",
    "AuditAction",
    "AuditAnchor",
    "AuditEntry",
    "AuditLedger",
    "AuditLog",
    "AuditProblem",
    "AuditReport",
    "AuditStore",
    "Scalar",
    "canonical_detail",
    "compute_entry_hash",
    "make_entry",
    "verify",
]

DOMAIN_TAG: Final = b"parcelproof/audit/v1\x00"
HASH_SIZE: Final = 32
ZERO_HASH: Final = bytes(HASH_SIZE)

#: Limits of what an entry may carry (see the module docstring: no personal data).
MAX_ID_LENGTH: Final = 128  # actor and target (models.ID_LENGTH)
MAX_DETAIL_KEYS: Final = 16
MAX_DETAIL_STRING: Final = 200
MAX_DETAIL_BYTES: Final = 2048  # canonical JSON of the whole detail object
MAX_SAFE_INTEGER: Final = 2**53 - 1  # I-JSON / RFC 8785 integer range

#: How many problems a report lists; the rest are counted in ``AuditReport.omitted``.
MAX_PROBLEMS: Final = 100
#: How far back verification looks to tell a moved entry from an edited one.
_LINK_WINDOW: Final = 1024
_MOVE_SEARCH: Final = 8

Scalar = str | int | bool | None

_ID = re.compile(r"[!-~]{1,128}")  # printable ASCII, no spaces: ids, never prose
_KEY = re.compile(r"[a-z][a-z0-9_]{0,39}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class AuditAction(StrEnum):
    """The actions an entry may record. Use these; :meth:`AuditLog.record` refuses others."""

    PERSONAL_DATA_READ = "personal-data.read"  # decrypted details or contact data were read
    EVIDENCE_READ = "evidence.read"  # an operator or resolver opened a shipment's evidence
    PRIVACY_EXPORT = "privacy.export"  # a data-subject export was produced
    PRIVACY_ERASE = "privacy.erase"  # a shipment's keys were destroyed (crypto-shredding)
    TOKEN_ISSUE = "token.issue"  # noqa: S105 - an action name: an API client was issued
    TOKEN_REVOKE = "token.revoke"  # noqa: S105 - an action name: an API client was revoked
    KEYS_ROTATE = "keys.rotate"  # data keys were re-wrapped under a new key-encryption key
    STAFF_CREATE = "staff.create"  # a staff account was created
    STAFF_DISABLE = "staff.disable"  # a staff account was disabled and its sessions ended
    STAFF_LOGIN = "staff.login"  # a staff member logged in
    STAFF_LOGIN_FAILED = "staff.login-failed"  # a staff login failed
    STAFF_MFA_ENROL = "staff.mfa-enrol"  # a second factor was enrolled
    AGENT_KEY_REGISTER = "agent-key.register"  # an agent signing key was registered on chain
    AGENT_KEY_REVOKE = "agent-key.revoke"  # an agent signing key was revoked on chain
    DISPUTE_OPEN = "dispute.open"  # a dispute was opened (and recorded on chain)
    DISPUTE_ASSIGN = "dispute.assign"  # a dispute was assigned to a resolver
    DISPUTE_COMMENT = "dispute.comment"  # a sealed comment was added to a dispute
    DISPUTE_RESOLVE = "dispute.resolve"  # a dispute's outcome was recorded (and on chain)
    WEBHOOK_CREATE = "webhook.create"  # a webhook subscription was registered
    WEBHOOK_DELETE = "webhook.delete"  # a webhook subscription was deleted


#: Every action name an entry may carry.
ACTIONS: Final[frozenset[str]] = frozenset(a.value for a in AuditAction)


# --- records and ports ----------------------------------------------------------------------


@dataclass(frozen=True)
class AuditEntry:
    """One entry as stored. ``detail_json`` is the canonical (RFC 8785) JSON of the detail."""

    seq: int
    at: int
    actor: str
    action: str
    target: str | None
    detail_json: str
    prev_hash: bytes
    entry_hash: bytes

    @property
    def detail(self) -> dict[str, Scalar]:
        """The detail object (:class:`FormatError` if the stored text is not a JSON object)."""
        value = _parse_detail(self.detail_json)
        if value is None:
            raise FormatError(f"audit entry {self.seq}: detail is not a JSON object")
        return value


@dataclass(frozen=True)
class AuditAnchor:
    """An audit head the ledger accepted, as this node recorded it."""

    size: int
    head: bytes
    tx_hash: bytes | None
    block_number: int | None
    created_at: int


class AnchoredHead(Protocol):
    """An anchored audit head: ``head`` is the hash of entry ``size - 1``."""

    @property
    def size(self) -> int: ...

    @property
    def head(self) -> bytes: ...


class ChainAuditHead(AnchoredHead, Protocol):
    """An audit head as the ledger reports it."""

    @property
    def block_number(self) -> int | None: ...

    @property
    def tx_hash(self) -> bytes | None: ...


@runtime_checkable
class AuditLedger(Protocol):
    """What the audit log needs from the ledger client."""

    def anchor_audit_head(self, size: int, head: bytes, *, sender: Any) -> ChainAuditHead: ...

    def latest_audit_head(self, courier_id: bytes) -> ChainAuditHead | None: ...

    def audit_heads(self, courier_id: bytes, from_block: int = 0) -> Sequence[ChainAuditHead]: ...


def _write(store: BatchAuditStore, batch: list[_Pending]) -> None:
    """Append a batch of pending records; each learns its entry or the batch's failure."""
    try:
        entries = store.append_many([p.build for p in batch])
    except BaseException as e:
        for p in batch:
            p.error, p.done = e, True
        return
    for p, entry in zip(batch, entries, strict=True):
        p.entry, p.done = entry, True


@dataclass
class _Pending:
    """A record waiting for its batch (group commit)."""

    build: Callable[[int, bytes], AuditEntry]
    entry: AuditEntry | None = None
    error: BaseException | None = None
    done: bool = False


class AuditStore(Protocol):
    """Storage of one audit log (one per courier log id)."""

    @property
    def log_id(self) -> bytes: ...

    def append(self, build: Callable[[int, bytes], AuditEntry]) -> AuditEntry:
        """Atomically append ``build(seq, prev_hash)``, where ``seq`` is the next sequence
        number and ``prev_hash`` the last entry's hash (zero for the first), serialised
        against every other writer of the log."""
        ...

    def entries(self, start: int = 0, stop: int | None = None) -> list[AuditEntry]:
        """Entries with ``start <= seq < stop`` by increasing seq."""
        ...

    def iter_entries(self, start: int = 0, stop: int | None = None) -> Iterator[AuditEntry]:
        """Like :meth:`entries`, read in batches."""
        ...

    def recent(self, limit: int) -> list[AuditEntry]:
        """The ``limit`` newest entries, newest first."""
        ...

    def head(self) -> tuple[int, bytes]:
        """(last seq + 1, last entry's stored hash); (0, zero hash) for an empty log."""
        ...

    def add_anchor(self, anchor: AuditAnchor) -> None:
        """Record an anchored head; idempotent per size, another head for a size conflicts."""
        ...

    def anchors(self) -> list[AuditAnchor]:
        """Recorded anchors by increasing size."""
        ...

    def latest_anchor(self) -> AuditAnchor | None: ...


@runtime_checkable
class BatchAuditStore(Protocol):
    """A store that appends many entries in one transaction (what group commit uses)."""

    def append_many(
        self, builds: Sequence[Callable[[int, bytes], AuditEntry]]
    ) -> list[AuditEntry]: ...


if TYPE_CHECKING:
    from parcelproof.chain.ledger import LedgerClient

    def _ledger_client_is_an_audit_ledger(client: LedgerClient) -> AuditLedger:
        return client  # mypy proves the real client satisfies the port


# --- entries --------------------------------------------------------------------------------


def canonical_detail(detail: Mapping[str, Scalar] | None) -> str:
    """Validate ``detail`` (flat, small, no prose; see the module docstring) and return its
    canonical JSON. Raises :class:`FormatError` naming what is wrong."""
    if detail is None:
        return "{}"
    if not isinstance(detail, Mapping):
        raise FormatError("audit detail must be a mapping of names to scalars")
    if len(detail) > MAX_DETAIL_KEYS:
        raise FormatError(f"audit detail has {len(detail)} keys, at most {MAX_DETAIL_KEYS}")
    clean: dict[str, Scalar] = {}
    for key, value in detail.items():
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise FormatError(
                f"audit detail key {key!r} must be snake_case (a-z, 0-9, _), at most 40 chars"
            )
        if value is None or isinstance(value, bool):
            clean[key] = value
        elif isinstance(value, int):
            if abs(value) > MAX_SAFE_INTEGER:
                raise FormatError(f"audit detail {key}: integer outside ±(2**53 - 1)")
            clean[key] = value
        elif isinstance(value, str):
            if len(value) > MAX_DETAIL_STRING:
                raise FormatError(
                    f"audit detail {key}: string longer than {MAX_DETAIL_STRING} characters "
                    "(detail is for ids, counts and reasons, never personal data)"
                )
            if _CONTROL.search(value) or _has_surrogate(value):
                raise FormatError(f"audit detail {key}: control or unpaired surrogate characters")
            clean[key] = value
        else:
            raise FormatError(
                f"audit detail {key}: {type(value).__name__} is not allowed; values must be "
                "flat scalars (str, int, bool or None)"
            )
    text = _jcs(clean).decode("utf-8")
    if len(text.encode("utf-8")) > MAX_DETAIL_BYTES:
        raise FormatError(f"audit detail exceeds {MAX_DETAIL_BYTES} bytes of canonical JSON")
    return text


def compute_entry_hash(
    prev_hash: bytes,
    seq: int,
    at: int,
    actor: str,
    action: str,
    target: str | None,
    detail: Mapping[str, Scalar],
) -> bytes:
    """``SHA-256(DOMAIN_TAG || prev_hash || JCS({seq, at, actor, action, target, detail}))``."""
    document = {
        "seq": seq,
        "at": at,
        "actor": actor,
        "action": action,
        "target": target,
        "detail": dict(detail),
    }
    return hashlib.sha256(DOMAIN_TAG + prev_hash + _jcs(document)).digest()


def make_entry(
    seq: int,
    at: int,
    actor: str,
    action: str,
    target: str | None,
    detail_json: str,
    prev_hash: bytes,
) -> AuditEntry:
    """The entry ``seq`` following ``prev_hash``, with its hash (``detail_json`` canonical)."""
    if not isinstance(prev_hash, bytes) or len(prev_hash) != HASH_SIZE:
        raise FormatError(f"previous audit hash must be {HASH_SIZE} bytes")
    if not isinstance(seq, int) or seq < 0 or not isinstance(at, int) or at < 0:
        raise FormatError("audit seq and time must be non-negative integers")
    detail = _parse_detail(detail_json)
    if detail is None:
        raise FormatError("audit detail must be a JSON object")
    digest = compute_entry_hash(prev_hash, seq, at, actor, action, target, detail)
    return AuditEntry(seq, at, actor, action, target, detail_json, prev_hash, digest)


# --- verification ---------------------------------------------------------------------------

ProblemKind = Literal[
    "edited", "deleted", "reordered", "broken-link", "duplicate", "truncated", "head-mismatch"
]


@dataclass(frozen=True)
class AuditProblem:
    """One thing wrong with the log: its kind, the entry it concerns (if one) and a message."""

    kind: ProblemKind
    seq: int | None
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class AuditReport:
    """What :func:`verify` found.

    ``size`` is the local log's size (last seq + 1) and ``head`` its last entry's stored hash;
    ``anchored_size`` the greatest anchored size and ``anchored_checked`` how many anchored
    heads were compared with the local entry they cover. ``problems`` lists at most
    :data:`MAX_PROBLEMS`; ``omitted`` counts the others.
    """

    size: int
    entries: int
    head: bytes
    anchored_size: int
    anchored_checked: int
    problems: tuple[AuditProblem, ...]
    omitted: int = 0

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems

    @property
    def unanchored(self) -> int:
        """Entries after the latest anchored head (protected by the hash chain only)."""
        return max(self.size - self.anchored_size, 0)

    def summary(self) -> str:
        """One line: intact, or how many problems and the first."""
        if self.ok:
            return (
                f"audit log intact: {self.size} entries, {self.anchored_checked} anchored "
                "heads match"
            )
        total = len(self.problems) + self.omitted
        return f"audit log tampered: {total} problem(s), first: {self.problems[0].message}"


def verify(
    entries: Iterable[AuditEntry],
    anchored_heads: Iterable[AnchoredHead] = (),
    *,
    start: int = 0,
    start_prev: bytes | None = ZERO_HASH,
) -> AuditReport:
    """Check a log's entries, in stored (seq) order, and the heads anchored for it.

    Finds entries whose content no longer matches their hash (``edited``), missing sequence
    numbers (``deleted``), entries moved to another position (``reordered``), entries that do
    not link to their predecessor (``broken-link``), repeated sequence numbers
    (``duplicate``), anchored sizes beyond the local log (``truncated``) and local entries that
    differ from the anchored head they should produce (``head-mismatch``).

    ``start`` and ``start_prev`` verify a suffix: the first entry should have seq ``start``
    and link to ``start_prev`` (``None``: take its stored previous hash as given, e.g. when an
    anchored head covering it is checked). Streams: memory stays bounded whatever the size.
    """
    heads: dict[int, bytes] = {}
    for anchored in anchored_heads:
        heads[int(anchored.size)] = bytes(anchored.head)
    checker = _Checker(start, start_prev, heads)
    if isinstance(entries, Sequence):
        # A list handed in out of seq order: name each misplaced entry, then check it sorted.
        for before, after in pairwise(entries):
            if after.seq < before.seq:
                checker.problem(
                    "reordered",
                    after.seq,
                    f"entry seq {after.seq} comes after seq {before.seq}: entries are out of order",
                )
        if checker.problems:
            entries = sorted(entries, key=lambda e: e.seq)
    for entry in entries:
        checker.feed(entry)
    return checker.finish()


class _Checker:
    """The streaming state of :func:`verify`."""

    def __init__(self, start: int, start_prev: bytes | None, heads: dict[int, bytes]) -> None:
        self.expected_seq = start
        self.expected_prev = start_prev
        self.heads = heads
        self.problems: list[AuditProblem] = []
        self.omitted = 0
        self.count = 0
        self.last_seq: int | None = None
        self.last_hash = ZERO_HASH
        self.checked = 0
        self.previous_moved = False  # the entry before was reported as moved
        # stored hash -> seq of the last _LINK_WINDOW entries, to recognise moved entries
        self.window: dict[bytes, int] = {}
        self.order: deque[bytes] = deque()

    def problem(self, kind: ProblemKind, seq: int | None, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(AuditProblem(kind, seq, message))
        else:
            self.omitted += 1

    def feed(self, e: AuditEntry) -> None:
        if self.last_seq is not None and e.seq <= self.last_seq:
            if e.seq == self.last_seq:
                self.problem("duplicate", e.seq, f"entry seq {e.seq} appears more than once")
            else:
                self.problem(
                    "reordered",
                    e.seq,
                    f"entry seq {e.seq} comes after seq {self.last_seq}: entries are out of order",
                )
            return
        self.count += 1
        gap = e.seq > self.expected_seq
        if gap:
            first, last = self.expected_seq, e.seq - 1
            which = f"entry seq {first} is" if first == last else f"entries seq {first}-{last} are"
            self.problem("deleted", first, f"{which} missing: deleted from the log")
        moved = self._check_entry(e, linkable=not gap and self.expected_prev is not None)
        head = self.heads.get(e.seq + 1)
        if head is not None:
            self.checked += 1
            if head != e.entry_hash:
                self.problem(
                    "head-mismatch",
                    e.seq,
                    f"the ledger anchored head {_short(head)} at size {e.seq + 1}, but local "
                    f"entry seq {e.seq} hashes to {_short(e.entry_hash)}: the log up to that "
                    "entry was rewritten since it was anchored",
                )
        self._remember(e)
        self.previous_moved = moved

    def _check_entry(self, e: AuditEntry, *, linkable: bool) -> bool:
        """Report what is wrong with ``e``; True if it was moved."""
        recomputed, why = _recompute(e, e.seq)
        content_ok = recomputed == e.entry_hash
        linked = linkable and e.prev_hash == self.expected_prev
        if content_ok and (linked or not linkable or self.previous_moved):
            return False  # (a link broken by a moved predecessor is already reported)
        predecessor = self.window.get(e.prev_hash)
        moved_link = predecessor is not None and predecessor != e.seq - 1
        if not content_ok:
            written_as = None if why else _written_as(e)
            if written_as is not None:
                self.problem(
                    "reordered",
                    e.seq,
                    f"entry at seq {e.seq} was written as seq {written_as}: entries were "
                    "moved (reordered or renumbered)",
                )
                return True
            if moved_link:
                self.problem(
                    "reordered",
                    e.seq,
                    f"entry at seq {e.seq} links to the entry now at seq {predecessor}, not "
                    f"to seq {e.seq - 1}: entries were reordered",
                )
                return True
            if why:
                self.problem("edited", e.seq, f"entry seq {e.seq} was edited: {why}")
            else:
                self.problem(
                    "edited",
                    e.seq,
                    f"entry seq {e.seq} was edited: stored hash {_short(e.entry_hash)}, its "
                    f"content hashes to {_short(recomputed)}",
                )
            return False
        if moved_link:
            self.problem(
                "reordered",
                e.seq,
                f"entry seq {e.seq} links to the entry now at seq {predecessor}, not to seq "
                f"{e.seq - 1}: entries were reordered",
            )
            return True
        expected = self.expected_prev or ZERO_HASH
        before = "the start of the log" if e.seq == 0 else f"entry seq {e.seq - 1}"
        self.problem(
            "broken-link",
            e.seq,
            f"entry seq {e.seq} does not link to {before}: it names {_short(e.prev_hash)} as "
            f"previous hash, but {before} is {_short(expected)} (an earlier entry was "
            "rewritten or replaced)",
        )
        return False

    def _remember(self, e: AuditEntry) -> None:
        self.window[e.entry_hash] = e.seq
        self.order.append(e.entry_hash)
        if len(self.order) > _LINK_WINDOW:
            old = self.order.popleft()
            if self.window.get(old, -1) < e.seq - _LINK_WINDOW + 1:
                self.window.pop(old, None)
        self.expected_seq = e.seq + 1
        self.expected_prev = e.entry_hash
        self.last_seq = e.seq
        self.last_hash = e.entry_hash

    def finish(self) -> AuditReport:
        size = self.expected_seq if self.last_seq is None else self.last_seq + 1
        anchored_size = max(self.heads, default=0)
        for anchored in sorted(s for s in self.heads if s > size):
            self.problem(
                "truncated",
                None,
                f"the ledger anchored an audit head at size {anchored} but the local log ends "
                f"at size {size}: entries {size}-{anchored - 1} were deleted (truncation)",
            )
            break  # one truncation message: the larger anchored sizes say the same
        return AuditReport(
            size=size,
            entries=self.count,
            head=self.last_hash,
            anchored_size=anchored_size,
            anchored_checked=self.checked,
            problems=tuple(self.problems),
            omitted=self.omitted,
        )


def _recompute(e: AuditEntry, seq: int) -> tuple[bytes, str]:
    """(hash of the entry's content at ``seq``, "" or why it cannot be hashed)."""
    if not isinstance(e.prev_hash, bytes) or len(e.prev_hash) != HASH_SIZE:
        return ZERO_HASH, "its previous hash is not 32 bytes"
    if not isinstance(e.entry_hash, bytes) or len(e.entry_hash) != HASH_SIZE:
        return ZERO_HASH, "its stored hash is not 32 bytes"
    detail = _parse_detail(e.detail_json)
    if detail is None:
        return ZERO_HASH, "its detail is not a JSON object"
    try:
        if _jcs(detail).decode("utf-8") != e.detail_json:
            return ZERO_HASH, "its detail is not in canonical JSON form"
        return compute_entry_hash(e.prev_hash, seq, e.at, e.actor, e.action, e.target, detail), ""
    except (FormatError, TypeError, ValueError, UnicodeError):
        return ZERO_HASH, "its fields cannot be canonicalised"


def _written_as(e: AuditEntry) -> int | None:
    """The nearby seq the entry's content hashes correctly at, if any (a moved entry)."""
    for distance in range(1, _MOVE_SEARCH + 1):
        for seq in (e.seq - distance, e.seq + distance):
            if seq >= 0 and _recompute(e, seq)[0] == e.entry_hash:
                return seq
    return None


# --- the service ----------------------------------------------------------------------------


class AuditLog:
    """Records audit entries and anchors the log's head.

    ``record`` raises on failure (:class:`FormatError` for a bad entry,
    :class:`~parcelproof.core.errors.StoreError` when the database fails): a caller about to
    hand out personal data should refuse to do so when the access cannot be recorded.
    """

    def __init__(self, store: AuditStore, clock: Clock | None = None) -> None:
        self._store = store
        self._clock = clock or SystemClock()
        # Group commit: concurrent records are appended together by whichever caller gets
        # there first (one lock and one commit for all), each caller returning once its own
        # entry is stored. One at a time, 50 concurrent lookups queued on the log's lock.
        self._queue: list[_Pending] = []
        self._leading = False
        self._cond = threading.Condition()

    @property
    def store(self) -> AuditStore:
        return self._store

    @property
    def log_id(self) -> bytes:
        """The courier (log) id the audit log belongs to."""
        return self._store.log_id

    def record(
        self,
        actor: str,
        action: str,
        target: str | None = None,
        detail: Mapping[str, Scalar] | None = None,
    ) -> AuditEntry:
        """Append an entry: ``actor`` did ``action`` (one of :class:`AuditAction`) to
        ``target``, with ``detail`` (flat ids, counts, reasons; never personal data)."""
        _check_id(actor, "actor")
        if target is not None:
            _check_id(target, "target")
        if action not in ACTIONS:
            raise FormatError(f"unknown audit action {action!r}: use an AuditAction")
        action = str(action)
        detail_json = canonical_detail(detail)

        def build(seq: int, prev_hash: bytes) -> AuditEntry:
            return make_entry(seq, self._clock.now(), actor, action, target, detail_json, prev_hash)

        if not isinstance(self._store, BatchAuditStore):
            return self._store.append(build)
        return self._grouped(self._store, build)

    def _grouped(
        self, store: BatchAuditStore, build: Callable[[int, bytes], AuditEntry]
    ) -> AuditEntry:
        mine = _Pending(build)
        with self._cond:
            self._queue.append(mine)
            while not mine.done:
                if self._leading:  # another caller is writing a batch: wait for it
                    self._cond.wait()
                    continue
                self._leading = True
                batch, self._queue = self._queue, []
                self._cond.release()
                try:
                    _write(store, batch)
                finally:
                    self._cond.acquire()
                    self._leading = False
                    self._cond.notify_all()
        if mine.entry is None:
            raise mine.error or StoreError("the audit entry was not stored")
        return mine.entry

    def head(self) -> tuple[int, bytes]:
        """(size, hash of the last entry); (0, zero hash) while empty."""
        return self._store.head()

    def entries(self, start: int = 0, stop: int | None = None) -> list[AuditEntry]:
        """Entries with ``start <= seq < stop``, oldest first."""
        return self._store.entries(start, stop)

    def recent(self, limit: int = 20) -> list[AuditEntry]:
        """The ``limit`` newest entries, newest first."""
        return self._store.recent(limit)

    def anchors(self) -> list[AuditAnchor]:
        """Heads this node anchored (and learnt from the chain), by increasing size."""
        return self._store.anchors()

    def verify_against(
        self,
        anchored_heads: Iterable[AnchoredHead],
        on_entry: Callable[[], None] | None = None,
    ) -> AuditReport:
        """:func:`verify` the whole stored log (read in batches) against ``anchored_heads``;
        ``on_entry`` is called once per entry read (a progress bar)."""
        entries = self._store.iter_entries()
        if on_entry is not None:
            entries = _counted(entries, on_entry)
        return verify(entries, anchored_heads)

    def anchor(self, ledger: AuditLedger, *, sender: Any) -> AuditAnchor | None:
        """Anchor the current head if it grew since the chain's latest one; None otherwise.

        Before sending, the entries since the chain's latest head are verified to extend it
        (:class:`AuditLogTamperedError` otherwise: nothing is anchored over a tampered log).
        A head the chain holds but this node did not record (a crash after sending) is
        recorded. Ledger failures propagate (e.g. ``NonGrowingAuditHeadError`` when another
        process anchored first: the next call catches up).
        """
        size, head = self._store.head()
        local = self._store.latest_anchor()
        if local is not None and (size, head) == (local.size, local.head):
            return None  # nothing new since this node's latest anchor (else: ask the chain)
        on_chain = ledger.latest_audit_head(self.log_id)
        base = 0 if on_chain is None else on_chain.size
        if size < base:
            message = (
                f"the ledger anchored an audit head at size {base} but the local log ends at "
                f"size {size}: entries {size}-{base - 1} were deleted (truncation)"
            )
            raise AuditLogTamperedError(f"refusing to anchor the audit log: {message}", (message,))
        # The entry the chain's head covers, and everything after it.
        first = max(base - 1, 0)
        report = verify(
            self._store.entries(first, size),
            [on_chain] if on_chain is not None else [],
            start=first,
            start_prev=None if base else ZERO_HASH,
        )
        if not report.ok:
            raise _tampered(report)
        if report.size != size or report.head != head:
            raise AuditLogTamperedError(
                f"the audit log changed while it was being anchored (head at size {size} read, "
                f"size {report.size} verified)"
            )
        if on_chain is not None:
            self._learn(ledger, on_chain)
        if size == base:
            return None
        result = ledger.anchor_audit_head(size, head, sender=sender)
        anchor = AuditAnchor(size, head, result.tx_hash, result.block_number, self._clock.now())
        self._store.add_anchor(anchor)
        return anchor

    def _learn(self, ledger: AuditLedger, on_chain: ChainAuditHead) -> None:
        """Record a head the chain holds if this node has no record of it yet."""
        local = self._store.latest_anchor()
        if local is not None and local.size >= on_chain.size:
            return
        block, tx = on_chain.block_number, on_chain.tx_hash
        if block is None:
            since = (local.block_number or 0) if local is not None else 0
            found = [h for h in ledger.audit_heads(self.log_id, since) if h.size == on_chain.size]
            if found:
                block, tx = found[-1].block_number, found[-1].tx_hash
        self._store.add_anchor(
            AuditAnchor(on_chain.size, on_chain.head, tx, block, self._clock.now())
        )


# --- helpers --------------------------------------------------------------------------------


def _tampered(report: AuditReport) -> AuditLogTamperedError:
    messages = tuple(p.message for p in report.problems)
    return AuditLogTamperedError(
        f"refusing to anchor the audit log, it does not verify: {messages[0]}"
        + (f" (and {len(messages) - 1 + report.omitted} more)" if len(messages) > 1 else ""),
        messages,
    )


def _check_id(value: object, what: str) -> None:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise FormatError(
            f"audit {what} must be an identifier: 1-{MAX_ID_LENGTH} printable ASCII characters "
            "without spaces"
        )


def _jcs(value: Any) -> bytes:
    try:
        out: bytes = jcs.dumps(value)
    except rfc8785.CanonicalizationError as e:
        raise FormatError(f"cannot canonicalise audit data: {e}") from e
    return out


def _parse_detail(text: object) -> dict[str, Scalar] | None:
    """The detail object, or None if ``text`` is not a JSON object of scalars."""
    if not isinstance(text, str):
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict):
        return None
    for item in value.values():
        if item is not None and not isinstance(item, str | int | bool):
            return None
    return value


def _has_surrogate(text: str) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def _short(digest: bytes) -> str:
    return "0x" + digest.hex()


def _counted(entries: Iterator[AuditEntry], tick: Callable[[], None]) -> Iterator[AuditEntry]:
    for e in entries:
        tick()
        yield e
