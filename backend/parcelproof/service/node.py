"""A courier node's use cases: create shipments, ingest signed events, anchor, serve its log."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import math
import re
import secrets
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from limits import parse as parse_limit
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from parcelproof.core import eip712, envelope, handoff, jcs, merkle
from parcelproof.core.bundle import BundleEvent, BundleLog, EarlierCheckpoint
from parcelproof.core.commitment import (
    ZERO32,
    Disclosure,
    FieldOpening,
    JsonValue,
    disclose,
    event_commitment,
    shipment_ref,
)
from parcelproof.core.errors import (
    AgentKeyNotValidError,
    BatchAbortedError,
    ConflictError,
    DatabaseUnavailableError,
    Error,
    EventIdReusedError,
    FormatError,
    InconsistentCheckpointError,
    KeyStateError,
    NonGrowingCheckpointError,
    NotFoundError,
    RootMismatchError,
    VerificationError,
)
from parcelproof.core.vocabulary import Status, check_transition, parse_status
from parcelproof.service.ports import (
    AnchoredCheckpoint,
    CheckpointRecord,
    Clock,
    ErasureRecord,
    EventRecord,
    LedgerPort,
    ShipmentErasedError,
    ShipmentRecord,
    Store,
    SystemClock,
)
from parcelproof.service.privacy import (
    EXPORT_FORMAT,
    EXPORT_VERSION,
    RETENTION,
    ErasureNotice,
    ErasureReceipt,
    RetentionResult,
    check_reason,
    parse_receipt,
    sign_receipt,
    utc,
)

MAX_CLOCK_SKEW = 300
ERASE_ATTEMPTS = 10  # an erasure retries when an event lands between its read and its write
ERASE_BACKOFF = 0.01  # seconds, times a random factor growing with the attempt
RETENTION_BATCH = 500
MAX_BACKDATE = 72 * 3600  # scanners offline for up to three days may still upload
REQUIRED_FIELDS = ("status", "time")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_SHIPMENT_ID_CACHE = 100_000

log = logging.getLogger("parcelproof.node")


class AgentKeyCheck(Protocol):
    """Whether an agent key could sign for a courier at a time (the ledger, or a cache)."""

    def is_agent_key_valid(self, courier_id: bytes, agent: str, at: int) -> bool: ...


class _Sized(Protocol):
    @property
    def size(self) -> int: ...


class LatestCheckpointReader(Protocol):
    """Reads a courier's latest checkpoint on chain."""

    def latest_checkpoint(self, courier_id: bytes) -> _Sized | None: ...


@dataclass(frozen=True)
class EventContext:
    """What an agent needs to build and sign the next event of a shipment."""

    domain: eip712.Domain
    log_id: bytes
    shipment: bytes
    sequence: int
    previous: bytes


@dataclass(frozen=True)
class TimelineEntry:
    """One event as a customer sees it, with its anchoring state."""

    log_id: bytes
    sequence: int
    event_time: int
    fields: dict[str, JsonValue]
    anchoring: str  # "pending", "anchored" (in block_number) or "confirmed"
    checkpoint_size: int | None  # the first checkpoint that includes the event
    block_number: int | None = None


@dataclass(frozen=True)
class LogView:
    """A shipment's events on one courier log, decrypted, with the bundle part for them."""

    bundle_log: BundleLog | None
    timeline: list[TimelineEntry]
    erasure: ErasureNotice | None = None  # set when the shipment's keys were destroyed


@dataclass(frozen=True)
class EventSubmission:
    """One agent-signed event as a courier submits it (an item of a bulk request)."""

    tracking_number: str
    openings: Sequence[FieldOpening]
    event_time: int
    agent: str
    signature: bytes
    event_id: str | None = None


@dataclass(frozen=True)
class Recorded:
    """An event of a bulk request that is stored; ``replayed`` when it was stored before."""

    record: EventRecord
    replayed: bool = False


@dataclass
class _Tip:
    """Where a shipment's hash chain stands while events are checked (one request's view)."""

    shipment: ShipmentRecord
    last: EventRecord | None
    data_key: bytes | None = None
    status: Status | None = None
    status_known: bool = False
    appended: list[EventRecord] = field(default_factory=list)  # checked, not yet stored


@dataclass(frozen=True)
class NewShipment:
    """What creating a shipment returns, once: nothing here is stored in clear."""

    shipment_id: str
    access_token: str  # for the customer's notification link (a second factor)
    confirmation_code: str  # the recipient tells it to the driver at delivery


def _token_alphabet_encode(raw: bytes) -> str:
    return base64.b32encode(raw).decode().rstrip("=").lower()


def _factor_matches(factors: Mapping[str, str], postcode: str | None, token: str | None) -> bool:
    ok = False
    if postcode is not None:
        ok |= hmac.compare_digest(
            factors["postcode"].encode(), normalize_postcode(postcode).encode()
        )
    if token is not None:
        digest = hashlib.sha256(token.strip().lower().encode()).hexdigest()
        ok |= hmac.compare_digest(factors["token_sha256"].encode(), digest.encode())
    return ok


_DECOY_REF = bytes(32)


class TooManyAttemptsError(Error):
    """Too many wrong delivery confirmation codes for one parcel: wait ``retry_after`` s."""

    def __init__(self, retry_after: int) -> None:
        self.retry_after = max(1, retry_after)
        super().__init__(
            "too many wrong confirmation codes for this parcel: "
            f"try again in {self.retry_after} s (ask the recipient for the code again)"
        )


#: Wrong delivery confirmation codes allowed per parcel in a moving window: a six-digit code
#: cannot be guessed by an insider's scanner trying codes (5 per hour: 1 in 200,000 a day).
CODE_ATTEMPTS = "5/hour"


class AttemptGuard:
    """Counts failures per key in a moving window (the `limits` library, process memory)."""

    def __init__(self, limit: str) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._item = parse_limit(limit)

    def check(self, key: str) -> None:
        """Raise TooManyAttemptsError while ``key`` has used up its failures."""
        if not self._limiter.test(self._item, key):
            reset = self._limiter.get_window_stats(self._item, key).reset_time
            raise TooManyAttemptsError(math.ceil(reset - time.time()))

    def failed(self, key: str) -> None:
        self._limiter.hit(self._item, key)


def normalize_postcode(postcode: str) -> str:
    """Canonical postcode for second-factor comparison (case and spacing insensitive)."""
    return "".join(postcode.split()).upper()


class CourierNode:
    """One courier's ParcelProof node: its store, keys, chain account and log."""

    def __init__(
        self,
        *,
        courier_id: bytes,
        ledger: LedgerPort,
        account: Any,
        keyring: envelope.Keyring,
        shipment_key: bytes,
        store: Store,
        clock: Clock | None = None,
        rng: Callable[[int], bytes] = secrets.token_bytes,
        agent_keys: AgentKeyCheck | None = None,
        erasure_signer: bytes | None = None,
        lookup_chain: LatestCheckpointReader | None = None,
    ) -> None:
        """``erasure_signer`` is the private key of the courier's anchoring account, which
        signs erasure receipts; by default it is taken from ``account`` when that is a local
        account holding its key (as :func:`~parcelproof.service.wiring.open_node` builds it).
        Without it the node cannot erase. ``lookup_chain`` answers the one chain read of a
        lookup (the log's latest checkpoint), e.g. a cached view; by default ``ledger``."""
        if len(courier_id) != 32:
            raise FormatError("courier id must be 32 bytes")
        self.courier_id = courier_id
        self.ledger = ledger
        self.account = account
        self.keyring = keyring
        self.store = store
        self.clock = clock or SystemClock()
        self._shipment_key = shipment_key
        self._rng = rng
        self.agent_keys: AgentKeyCheck = agent_keys or ledger
        self._decoy_record: ShipmentRecord | None = None
        self._erasure_key = erasure_signer if erasure_signer is not None else _key_of(account)
        self._code_guard = AttemptGuard(CODE_ATTEMPTS)
        self._domain: tuple[tuple[int, str], eip712.Domain] | None = None
        self._lookup_chain: LatestCheckpointReader = lookup_chain or ledger
        self._shipment_ids: dict[bytes, str] = {}  # shipment ref -> id, for audit entries

    @property
    def domain(self) -> eip712.Domain:
        key = (self.ledger.chain_id, self.ledger.address)
        if self._domain is None or self._domain[0] != key:
            self._domain = (key, eip712.Domain(chain_id=key[0], verifying_contract=key[1]))
        return self._domain[1]

    # --- shipments --------------------------------------------------------------------------

    def create_shipment(
        self,
        tracking_number: str,
        details: Mapping[str, JsonValue],
        postcode: str,
        *,
        access_token: str | None = None,
    ) -> NewShipment:
        """Register a shipment; details and second factors are stored encrypted only.

        Returns, once, the per-parcel access token (an alternative second factor for the
        customer's notification link) and the recipient's delivery confirmation code. A
        courier taking over a parcel passes the token the customer already holds.
        """
        ref = shipment_ref(self._shipment_key, tracking_number)
        if self.store.shipment_by_ref(ref) is not None:
            raise ConflictError("a shipment with this tracking number already exists")
        if not normalize_postcode(postcode):
            raise FormatError("destination postcode must not be empty")
        shipment_id = str(uuid.uuid4())
        data_key = envelope.new_data_key(self._rng)
        wrapped = envelope.wrap_data_key(self.keyring, data_key, shipment_id, self._rng)
        sealed_details = envelope.seal(
            data_key,
            _dumps(dict(details)),
            shipment_id=shipment_id,
            event_id="",
            purpose="details",
            rng=self._rng,
        )
        if access_token is not None and len(access_token.strip()) < 16:
            raise FormatError("an access token has at least 16 characters")
        access_token = (access_token or _token_alphabet_encode(self._rng(16))).strip().lower()
        confirmation_code = f"{int.from_bytes(self._rng(4), 'big') % 1_000_000:06d}"
        factors = {
            "postcode": normalize_postcode(postcode),
            "token_sha256": hashlib.sha256(access_token.encode()).hexdigest(),
            "code_sha256": hashlib.sha256(confirmation_code.encode()).hexdigest(),
        }
        sealed_factor = envelope.seal(
            data_key,
            _dumps(factors),
            shipment_id=shipment_id,
            event_id="",
            purpose="factor",
            rng=self._rng,
        )
        self.store.add_shipment(
            ShipmentRecord(
                shipment_id=shipment_id,
                ref=ref,
                wrapped_key=wrapped,
                sealed_details=sealed_details,
                sealed_factor=sealed_factor,
                created_at=self.clock.now(),
            )
        )
        return NewShipment(shipment_id, access_token, confirmation_code)

    def _factors(self, shipment: ShipmentRecord, data_key: bytes) -> dict[str, str]:
        plain = envelope.open_sealed(
            data_key,
            shipment.sealed_factor,
            shipment_id=shipment.shipment_id,
            event_id="",
            purpose="factor",
        )
        factors: dict[str, str] = json.loads(plain)
        return factors

    def _decoy(self) -> ShipmentRecord:
        """A never-stored shipment, sealed like a real one, for unknown tracking numbers."""
        if self._decoy_record is None:
            shipment_id = "decoy-" + uuid.uuid4().hex
            data_key = envelope.new_data_key(self._rng)
            factors = {"postcode": "\x00", "token_sha256": "", "code_sha256": ""}
            self._decoy_record = ShipmentRecord(
                shipment_id=shipment_id,
                ref=_DECOY_REF,
                wrapped_key=envelope.wrap_data_key(self.keyring, data_key, shipment_id, self._rng),
                sealed_details=b"",
                sealed_factor=envelope.seal(
                    data_key,
                    _dumps(factors),
                    shipment_id=shipment_id,
                    event_id="",
                    purpose="factor",
                    rng=self._rng,
                ),
                created_at=0,
            )
        return self._decoy_record

    def _shipment(self, tracking_number: str) -> ShipmentRecord:
        ref = shipment_ref(self._shipment_key, tracking_number)
        record = self.store.shipment_by_ref(ref)
        if record is None:
            raise NotFoundError("no such shipment on this node")
        if len(self._shipment_ids) >= _SHIPMENT_ID_CACHE:
            self._shipment_ids.clear()
        self._shipment_ids[ref] = record.shipment_id  # ids never change: safe to remember
        return record

    def _data_key(self, shipment: ShipmentRecord) -> bytes:
        if shipment.erased:
            raise self._erased_error(shipment)
        return envelope.unwrap_data_key(self.keyring, shipment.wrapped_key, shipment.shipment_id)

    def _erased_error(self, shipment: ShipmentRecord) -> ShipmentErasedError:
        erasure = self.store.erasure(shipment.shipment_id)
        when = f" on {utc(erasure.erased_at)}" if erasure else ""
        return ShipmentErasedError(
            f"the details of this shipment were erased{when}: its keys are destroyed, and "
            "nothing more can be recorded for it"
        )

    # --- events -----------------------------------------------------------------------------

    def event_context(self, tracking_number: str) -> EventContext:
        """Sequence and previous commitment the next event of this shipment must carry."""
        shipment = self._shipment(tracking_number)
        if shipment.erased:
            raise self._erased_error(shipment)
        last = self.store.last_event(shipment.shipment_id)
        return EventContext(
            domain=self.domain,
            log_id=self.courier_id,
            shipment=shipment.ref,
            sequence=last.sequence + 1 if last else 0,
            previous=last.commitment if last else ZERO32,
        )

    def record_event(
        self,
        tracking_number: str,
        openings: Sequence[FieldOpening],
        *,
        event_time: int,
        agent: str,
        signature: bytes,
        event_id: str | None = None,
    ) -> EventRecord:
        """Validate a signed event, seal its fields and salts, append its leaf to the log.

        Idempotent by ``event_id``: a replay of the same request returns the stored record,
        another request under the same id raises ConflictError.
        """
        shipment = self._shipment(tracking_number)
        digest = request_digest(shipment.ref, openings, event_time, agent, signature)
        if event_id is not None:
            existing = self.store.event_by_id(event_id)
            if existing is not None:
                return _replay(existing, digest)
        tip = _Tip(shipment, self.store.last_event(shipment.shipment_id))
        record = self._prepare(
            tip,
            openings,
            event_time=event_time,
            agent=agent,
            signature=signature,
            event_id=event_id,
            digest=digest,
        )
        try:
            return self.store.append_event(record, merkle.leaf_hash(record.commitment))
        except ConflictError:
            raced = self.store.event_by_id(record.event_id)
            if raced is not None:  # the same id landed concurrently
                return _replay(raced, digest)
            raise

    def record_events(
        self, items: Sequence[EventSubmission], *, atomic: bool = False
    ) -> list[Recorded | Error]:
        """Record many signed events in order, each with its own outcome (a recorded event,
        ``replayed`` when its id and body were stored before, or the error that refused it);
        the same checks as :meth:`record_event`, each event seeing the ones before it.

        The reads are batched and every accepted event is appended in one transaction, so a
        failure of the database stores none of them (sending them again is safe). When
        another writer changed one of the same shipments meanwhile, the events are recorded
        one at a time instead, as :meth:`record_event` does.

        ``atomic``: all or nothing. When any event is refused, none is stored and every event
        that would have been stored answers :class:`BatchAbortedError`; a concurrent writer
        aborts the batch the same way instead of falling back to one at a time.
        """
        refs = {
            it.tracking_number: shipment_ref(self._shipment_key, it.tracking_number) for it in items
        }
        shipments = self.store.shipments_by_refs(list(dict.fromkeys(refs.values())))
        stored_ids = self.store.events_by_ids([it.event_id for it in items if it.event_id])
        lasts = self.store.last_events([s.shipment_id for s in shipments.values()])
        tips: dict[str, _Tip] = {}
        outcomes: list[Recorded | Error | str] = []  # a str: the id of an event still pending
        pending: list[EventRecord] = []
        batch_ids: dict[str, EventRecord] = {}
        for it in items:
            try:
                shipment = shipments.get(refs[it.tracking_number])
                if shipment is None:
                    raise NotFoundError("no such shipment on this node")
                digest = request_digest(
                    shipment.ref, it.openings, it.event_time, it.agent, it.signature
                )
                if it.event_id is not None:
                    prior = stored_ids.get(it.event_id)
                    if prior is not None:
                        outcomes.append(Recorded(_replay(prior, digest), replayed=True))
                        continue
                    earlier = batch_ids.get(it.event_id)
                    if earlier is not None:
                        _replay(earlier, digest)
                        outcomes.append(it.event_id)
                        continue
                tip = tips.setdefault(
                    shipment.shipment_id, _Tip(shipment, lasts.get(shipment.shipment_id))
                )
                record = self._prepare(
                    tip,
                    it.openings,
                    event_time=it.event_time,
                    agent=it.agent,
                    signature=it.signature,
                    event_id=it.event_id,
                    digest=digest,
                )
            except DatabaseUnavailableError:
                raise
            except Error as e:
                outcomes.append(e)
                continue
            pending.append(record)
            batch_ids[record.event_id] = record
            outcomes.append(record.event_id)
        if atomic and any(isinstance(o, Error) for o in outcomes):
            refused = next(i for i, o in enumerate(outcomes) if isinstance(o, Error))
            return [_aborted(refused) if isinstance(o, str) else o for o in outcomes]
        if not pending:
            return [o for o in outcomes if not isinstance(o, str)]
        try:
            appended = self.store.append_events(
                [(r, merkle.leaf_hash(r.commitment)) for r in pending]
            )
        except (ConflictError, NotFoundError, ShipmentErasedError):
            if atomic:
                log.info("a concurrent writer changed these shipments; the batch is aborted")
                aborted = BatchAbortedError(
                    "not stored: another writer changed one of these shipments meanwhile"
                )
                return [aborted if isinstance(o, str) else o for o in outcomes]
            log.info("a concurrent writer changed these shipments; recording one at a time")
            return [self._one(it) for it in items]
        stored = {r.event_id: r for r in appended}
        first_seen: set[str] = set()
        result: list[Recorded | Error] = []
        for o in outcomes:
            if isinstance(o, str):
                result.append(Recorded(stored[o], replayed=o in first_seen))
                first_seen.add(o)
            else:
                result.append(o)
        return result

    def _one(self, it: EventSubmission) -> Recorded | Error:
        try:
            replayed = it.event_id is not None and self.store.event_by_id(it.event_id) is not None
            record = self.record_event(
                it.tracking_number,
                it.openings,
                event_time=it.event_time,
                agent=it.agent,
                signature=it.signature,
                event_id=it.event_id,
            )
        except DatabaseUnavailableError:
            raise
        except Error as e:
            return e
        return Recorded(record, replayed=replayed)

    def _prepare(
        self,
        tip: _Tip,
        openings: Sequence[FieldOpening],
        *,
        event_time: int,
        agent: str,
        signature: bytes,
        event_id: str | None,
        digest: bytes,
    ) -> EventRecord:
        """Check one event against its shipment's tip and build its record (sealed fields);
        on success the tip moves on to it."""
        shipment = tip.shipment
        if shipment.erased:
            raise self._erased_error(shipment)
        fields = {o.name: o.value for o in openings}
        if len(fields) != len(openings):
            raise FormatError("field names must be unique")
        for name in REQUIRED_FIELDS:
            if name not in fields:
                raise FormatError(f"event lacks the {name!r} field")
        status_value = fields["status"]
        if not isinstance(status_value, str):
            raise FormatError("status must be a string")
        canonical = parse_status(status_value).value
        if canonical != status_value:
            raise FormatError(
                f"status {status_value!r} is an alias: sign the canonical {canonical!r} "
                "(the agent SDK and CLI translate aliases before signing)"
            )
        for name, value in fields.items():
            if name.endswith("_sha256") and not (
                isinstance(value, str) and _SHA256_HEX.fullmatch(value)
            ):
                raise FormatError(f"{name} must be 64 lower-case hex digits (a SHA-256 digest)")
        if fields["time"] != event_time:
            raise FormatError("the committed time differs from the signed event time")
        now = self.clock.now()
        if event_time > now + MAX_CLOCK_SKEW:
            raise FormatError("event time lies in the future")
        if event_time < now - MAX_BACKDATE:
            raise FormatError(f"event time is more than {MAX_BACKDATE // 3600} hours in the past")

        if tip.data_key is None:
            tip.data_key = self._data_key(shipment)
        data_key = tip.data_key
        last = tip.last
        previous = last.commitment if last else ZERO32
        if last and event_time < last.event_time:
            raise FormatError("event time precedes the shipment's previous event")
        if not tip.status_known:
            tip.status = self._current_status(shipment, data_key, last)
            tip.status_known = True
        check_transition(tip.status, Status(status_value))
        code = fields.get("confirmation_code")
        if code is not None:
            self._code_guard.check(shipment.shipment_id)
            code_digest = hashlib.sha256(str(code).encode()).hexdigest()
            if status_value != Status.DELIVERED.value or not hmac.compare_digest(
                self._factors(shipment, data_key)["code_sha256"], code_digest
            ):
                self._code_guard.failed(shipment.shipment_id)
                raise FormatError("the recipient's confirmation code does not match")
        countersigned = handoff.parse(self.courier_id, shipment.ref, status_value, fields)
        if countersigned is not None:
            countersigned.verify(self.domain)
            if not self.agent_keys.is_agent_key_valid(
                countersigned.counterparty_log,
                countersigned.counterparty_agent,
                countersigned.handoff.handoff_time,
            ):
                raise AgentKeyNotValidError(
                    "the counterparty's agent key was not valid for its courier at the handoff"
                )
        corrected_to = fields.get("corrected_status")
        if corrected_to is not None and (
            not isinstance(corrected_to, str)
            or corrected_to not in {st.value for st in Status}
            or corrected_to == Status.CORRECTED.value
        ):
            raise FormatError("corrected_status must be a canonical status other than corrected")
        corrects = fields.get("corrects")
        if (status_value == Status.CORRECTED.value) != (corrects is not None):
            raise FormatError("a correction names the event it corrects, and only a correction")
        if corrects is not None and corrects not in {
            "0x" + e.commitment.hex()
            for e in [*self.store.events(shipment.shipment_id), *tip.appended]
        }:
            raise FormatError(
                "'corrects' must be the commitment of an earlier event of this parcel"
            )

        sequence = last.sequence + 1 if last else 0
        commitment = event_commitment(
            self.courier_id, shipment.ref, sequence, previous, [o.digest() for o in openings]
        )
        signed = eip712.SignedEvent(
            log_id=self.courier_id,
            shipment=shipment.ref,
            sequence=sequence,
            commitment=commitment,
            event_time=event_time,
        )
        eip712.verify_event_signature(self.domain, signed, signature, agent)
        if not self.agent_keys.is_agent_key_valid(self.courier_id, agent, event_time):
            raise AgentKeyNotValidError(
                f"agent key {agent} is not registered to this courier, revoked or outside its "
                f"validity window at {event_time}"
            )
        if not self.agent_keys.is_agent_key_valid(
            self.courier_id, agent, min(now, event_time + MAX_BACKDATE)
        ):
            # A revoked or expired key must not keep recording by backdating its events.
            raise AgentKeyNotValidError(f"agent key {agent} is no longer valid: revoked or expired")

        event_id = event_id or str(uuid.uuid4())
        sealed = envelope.seal(
            data_key,
            _dumps([o.to_json() for o in openings]),
            shipment_id=shipment.shipment_id,
            event_id=event_id,
            purpose="event",
            rng=self._rng,
        )
        record = EventRecord(
            event_id=event_id,
            shipment_id=shipment.shipment_id,
            sequence=sequence,
            previous=previous,
            commitment=commitment,
            leaf_index=-1,  # assigned by the store
            event_time=event_time,
            agent=agent,
            signature=signature,
            sealed_openings=sealed,
            recorded_at=self.clock.now(),
            request_digest=digest,
        )
        # What the shipment's status is after this event (as _current_status would read it).
        status: Status | None = Status(status_value)
        if status is Status.CORRECTED:
            status = parse_status(corrected_to) if isinstance(corrected_to, str) else tip.status
        tip.last, tip.status = record, status
        tip.appended.append(record)
        return record

    def _openings(
        self, shipment: ShipmentRecord, data_key: bytes, e: EventRecord
    ) -> list[FieldOpening]:
        plain = envelope.open_sealed(
            data_key,
            e.sealed_openings,
            shipment_id=shipment.shipment_id,
            event_id=e.event_id,
            purpose="event",
        )
        return [FieldOpening.from_json(o) for o in json.loads(plain)]

    def current_status(self, shipment: ShipmentRecord, last: EventRecord | None) -> Status | None:
        """The shipment's status after ``last`` (its latest event; corrections applied), None
        before any event. Decrypts only status codes; ShipmentErasedError once erased."""
        if last is None:
            return None
        return self._current_status(shipment, self._data_key(shipment), last)

    def _current_status(
        self, shipment: ShipmentRecord, data_key: bytes, last: EventRecord | None
    ) -> Status | None:
        if last is None:
            return None
        # Usually only the last event is read; a correction without a corrected status
        # sends the walk further back.
        events = [last]
        while events:
            e = events.pop()
            fields = {o.name: o.value for o in self._openings(shipment, data_key, e)}
            status = Status(str(fields["status"]))
            if status is not Status.CORRECTED:
                return status
            corrected_to = fields.get("corrected_status")
            if isinstance(corrected_to, str):
                return parse_status(corrected_to)
            if e is last:
                events = self.store.events(shipment.shipment_id)[:-1]
        return None

    # --- anchoring --------------------------------------------------------------------------

    def reconcile(self) -> AnchoredCheckpoint | None:
        """Learn from the chain what was anchored (the chain is the truth) and record it.

        Covers a crash between sending a checkpoint and recording it. Raises
        VerificationError if the ledger holds a root this log does not produce: the local
        log was altered, or another node anchors with this courier's account.
        """
        on_chain = self.ledger.latest_checkpoint(self.courier_id)
        self._forget_orphaned(on_chain.size if on_chain else 0)
        if on_chain is None:
            return None
        size = self.store.log_size()
        if on_chain.size > size:
            raise VerificationError(
                f"the ledger holds a checkpoint of size {on_chain.size} but this log has only "
                f"{size} leaves: wrong database, or the courier account is used elsewhere"
            )
        ours = merkle.tree_root(self.store.node, on_chain.size)
        if ours != on_chain.root:
            raise RootMismatchError(on_chain.root, ours, f"anchored root at size {on_chain.size}")
        local = self.store.latest_checkpoint()
        if local is not None and local.size == on_chain.size:
            if local.root != on_chain.root:  # the stored checkpoint row itself was altered
                raise RootMismatchError(
                    on_chain.root, local.root, f"stored checkpoint {local.size}"
                )
            return local
        block, tx = on_chain.block_number, on_chain.tx_hash
        if block is None:
            since = (local.block_number or 0) if local else 0
            found = [
                c
                for c in self.ledger.checkpoints(self.courier_id, since)
                if c.size == on_chain.size
            ]
            if found:
                block, tx = found[-1].block_number, found[-1].tx_hash
        checkpoint = AnchoredCheckpoint(on_chain.size, on_chain.root, block, tx)
        self.store.add_checkpoint(checkpoint)
        return checkpoint

    def _forget_orphaned(self, chain_size: int) -> None:
        """Demote to ``sent`` every recorded checkpoint larger than the chain's latest: a
        reorganisation dropped the block that held it (one account anchors this log, so the
        chain always keeps a prefix of its checkpoints). Lookups stop citing it, and the next
        anchoring sends the log's root again."""
        latest = self.store.latest_checkpoint()
        if latest is None or latest.size <= chain_size:
            return  # the usual case: one cheap query
        for cp in self.store.checkpoints():
            if cp.status != "sent" and cp.size > chain_size:
                log.warning(
                    "checkpoint of size %d (block %s) is no longer on chain (a reorganisation); "
                    "it will be anchored again",
                    cp.size,
                    cp.block_number,
                )
                self.store.mark_checkpoint(cp.size, "sent")

    def _landed(self, leaf_indices: Sequence[int]) -> list[CheckpointRecord]:
        """The landed checkpoints a view of these leaves cites (see
        :meth:`Store.landed_checkpoints`), among those the chain still holds: a
        reorganisation the worker has not noticed yet must not make a lookup cite a dropped
        block (one ``eth_call``)."""
        landed = self.store.landed_checkpoints(leaf_indices)
        if landed:
            on_chain = self._lookup_chain.latest_checkpoint(self.courier_id)
            chain_size = on_chain.size if on_chain else 0
            if landed[-1].size > chain_size:
                landed = self.store.landed_checkpoints(leaf_indices, at_most=chain_size)
        return landed

    def anchor(self, after_send: Callable[[], None] | None = None) -> AnchoredCheckpoint | None:
        """Anchor the log's current size and root, proven consistent with the chain's latest
        checkpoint; None when nothing is new. Safe to call again after any crash: it first
        reconciles with the chain, and the contract refuses a size that does not grow."""
        base = self.reconcile()
        size = self.store.log_size()
        if size == 0 or (base is not None and base.size == size):
            return None
        root = merkle.tree_root(self.store.node, size)
        proof = merkle.consistency_proof(self.store.node, base.size, size) if base else []
        try:
            result = self.ledger.anchor_checkpoint(size, root, proof, sender=self.account)
        except (NonGrowingCheckpointError, InconsistentCheckpointError):
            # The chain moved since we read it (an earlier incarnation's transaction landed).
            self.reconcile()
            raise
        if after_send is not None:
            after_send()  # fault-injection point for crash tests
        checkpoint = AnchoredCheckpoint(size, root, result.block_number, result.tx_hash)
        self.store.add_checkpoint(checkpoint)
        return checkpoint

    # --- lookup -----------------------------------------------------------------------------

    def view(
        self,
        tracking_number: str,
        postcode: str | None,
        reveal: Collection[str],
        *,
        access_token: str | None = None,
    ) -> LogView:
        """The shipment's events on this log for a customer who proves a second factor: the
        destination postcode or the parcel's access token.

        Unknown tracking number and wrong factor raise the same NotFoundError, and the factor
        comparison runs either way (a decoy for an unknown number).
        """
        with self.store.snapshot():
            return self._view(tracking_number, postcode, reveal, access_token)

    def _view(
        self,
        tracking_number: str,
        postcode: str | None,
        reveal: Collection[str],
        access_token: str | None,
    ) -> LogView:
        nothing = NotFoundError("no shipment matches this tracking number and second factor")
        try:
            shipment: ShipmentRecord | None = self._shipment(tracking_number)
        except (NotFoundError, FormatError):
            shipment = None
        if shipment is None:
            shipment = self._decoy()  # the same unwrap, decrypt and compare as a real one
        elif shipment.erased:
            # The second factor was sealed under the destroyed key: nothing can check it any
            # more. The erased answer reveals no personal data (docs/privacy.md, "Lookup of
            # an erased parcel").
            return self._log_view(shipment, None, ())
        data_key = self._data_key(shipment)
        factors = self._factors(shipment, data_key)
        if not _factor_matches(factors, postcode, access_token) or shipment.ref == _DECOY_REF:
            raise nothing
        return self._log_view(shipment, data_key, reveal)

    def evidence(self, tracking_number: str, reveal: Collection[str]) -> LogView:
        """The shipment's events for an authorised operator or dispute resolver (the caller
        checked the role; no customer factor is asked). Reveal more than a customer sees."""
        with self.store.snapshot():
            shipment = self._shipment(tracking_number)
            if shipment.erased:
                return self._log_view(shipment, None, ())
            return self._log_view(shipment, self._data_key(shipment), reveal)

    def _log_view(
        self, shipment: ShipmentRecord, data_key: bytes | None, reveal: Collection[str]
    ) -> LogView:
        """The shipment's events with their proofs; ``data_key=None`` for an erased shipment
        (its events carry commitments, signatures and proofs, but no field)."""
        events = self.store.events(shipment.shipment_id)
        landed = self._landed([e.leaf_index for e in events])
        checkpoint = landed[-1].anchored() if landed else None
        anchored_size = checkpoint.size if checkpoint else 0
        confirmed_size = max((c.size for c in landed if c.status == "confirmed"), default=0)
        firsts = sorted(
            {
                first.size
                for e in events
                if (first := _anchoring(e.leaf_index, landed, confirmed_size)[1]) is not None
            }
            - {anchored_size}
        )
        roots = {c.size: c.root for c in landed}
        # Every node the proofs need, read from the store in one query.
        node = _prefetched(
            self.store,
            [(e.leaf_index, anchored_size) for e in events if e.leaf_index < anchored_size],
            [(size, anchored_size) for size in firsts],
        )
        timeline: list[TimelineEntry] = []
        bundle_events: list[BundleEvent] = []
        for e in events:
            if data_key is None:
                d = Disclosure(self.courier_id, shipment.ref, e.sequence, e.previous, (), ())
            else:
                openings = self._openings(shipment, data_key, e)
                shown = [o.name for o in openings if o.name in reveal]
                d = disclose(self.courier_id, shipment.ref, e.sequence, e.previous, openings, shown)
            anchored = e.leaf_index < anchored_size
            proof = (
                tuple(merkle.inclusion_proof(node, e.leaf_index, anchored_size))
                if anchored
                else None
            )
            bundle_events.append(
                BundleEvent(
                    disclosure=d,
                    commitment=e.commitment,
                    event_time=e.event_time,
                    agent=e.agent,
                    signature=e.signature,
                    leaf_index=e.leaf_index if anchored else None,
                    inclusion_proof=proof,
                    erased=data_key is None,
                )
            )
            state, first = _anchoring(e.leaf_index, landed, confirmed_size)
            timeline.append(
                TimelineEntry(
                    log_id=self.courier_id,
                    sequence=e.sequence,
                    event_time=e.event_time,
                    fields=d.fields(),
                    anchoring=state,
                    checkpoint_size=first.size if first else None,
                    block_number=first.block_number if first else None,
                )
            )
        bundle_log = None
        if bundle_events and checkpoint is not None:
            # The first checkpoint that anchored each event: "anchored no later than".
            earlier = tuple(
                EarlierCheckpoint(
                    size, roots[size], tuple(merkle.consistency_proof(node, size, checkpoint.size))
                )
                for size in firsts
            )
            bundle_log = BundleLog(
                log_id=self.courier_id,
                shipment=shipment.ref,
                checkpoint_size=checkpoint.size,
                checkpoint_root=checkpoint.root,
                events=tuple(bundle_events),
                earlier=earlier,
            )
        erasure = None
        if data_key is None:
            record = self.store.erasure(shipment.shipment_id)
            if record is not None:
                erasure = ErasureNotice(
                    log_id=self.courier_id,
                    erased_at=record.erased_at,
                    reason=record.reason,
                    receipt=json.loads(record.receipt),
                )
        return LogView(bundle_log=bundle_log, timeline=timeline, erasure=erasure)

    # --- data-subject rights ------------------------------------------------------------------

    def export(self, tracking_number: str) -> dict[str, Any]:
        """Everything this node holds about a parcel, decrypted, as a JSON object (the
        ``parcelproof-export`` format of docs/privacy.md). For an erased shipment the
        details, second factors and event fields are ``null`` and the erasure is included.
        For authorised staff only; NotFoundError for an unknown tracking number."""
        shipment = self._shipment(tracking_number)
        data_key = None if shipment.erased else self._data_key(shipment)
        stored_events = self.store.events(shipment.shipment_id)
        landed = self.store.landed_checkpoints([e.leaf_index for e in stored_events])
        confirmed_size = max((c.size for c in landed if c.status == "confirmed"), default=0)
        events: list[dict[str, Any]] = []
        for e in stored_events:
            state, first = _anchoring(e.leaf_index, landed, confirmed_size)
            fields = None
            if data_key is not None:
                fields = [o.to_json() for o in self._openings(shipment, data_key, e)]
            events.append(
                {
                    "eventId": e.event_id,
                    "sequence": e.sequence,
                    "previous": "0x" + e.previous.hex(),
                    "commitment": "0x" + e.commitment.hex(),
                    "leafIndex": e.leaf_index,
                    "eventTime": e.event_time,
                    "recordedAt": e.recorded_at,
                    "agent": e.agent,
                    "signature": "0x" + e.signature.hex(),
                    "fields": fields,
                    "anchoring": {
                        "state": state,
                        "checkpointSize": first.size if first else None,
                        "checkpointRoot": "0x" + first.root.hex() if first else None,
                        "blockNumber": first.block_number if first else None,
                        "txHash": "0x" + first.tx_hash.hex() if first and first.tx_hash else None,
                    },
                }
            )
        details = factors = None
        if data_key is not None:
            details = json.loads(
                envelope.open_sealed(
                    data_key,
                    shipment.sealed_details,
                    shipment_id=shipment.shipment_id,
                    event_id="",
                    purpose="details",
                )
            )
            stored = self._factors(shipment, data_key)
            factors = {
                "postcode": stored["postcode"],
                "accessTokenSha256": stored["token_sha256"],
                "confirmationCodeSha256": stored["code_sha256"],
            }
        record = self.store.erasure(shipment.shipment_id)
        erasure = None
        if record is not None:
            erasure = {
                "erasedAt": record.erased_at,
                "reason": record.reason,
                "receipt": json.loads(record.receipt),
            }
        return {
            "format": EXPORT_FORMAT,
            "version": EXPORT_VERSION,
            "exportedAt": self.clock.now(),
            "courier": {
                "logId": "0x" + self.courier_id.hex(),
                "chainId": self.ledger.chain_id,
                "ledger": self.ledger.address,
            },
            "shipment": {
                "shipmentId": shipment.shipment_id,
                "reference": "0x" + shipment.ref.hex(),
                "createdAt": shipment.created_at,
                "state": "erased" if shipment.erased else "active",
                "details": details,
                "secondFactors": factors,
            },
            "events": events,
            "erasure": erasure,
        }

    def erase(self, tracking_number: str, reason: str) -> ErasureReceipt:
        """Crypto-shred a parcel: destroy its data key (its details, second factors, event
        fields and salts become unreadable for anyone) and return the signed erasure receipt.

        Idempotent: erasing again returns the first receipt. Leaves, checkpoints, commitments
        and signatures stay, so the parcel's proofs still verify without revealing anything.
        NotFoundError for an unknown tracking number; FormatError for an unknown reason.
        """
        check_reason(reason)
        return self._erase(self._shipment(tracking_number), reason)

    def shipment_id(self, tracking_number: str) -> str:
        """The node's internal id of a parcel (for audit entries); NotFoundError if unknown.
        Remembered from the lookup that just read the shipment (no second read)."""
        known = self._shipment_ids.get(shipment_ref(self._shipment_key, tracking_number))
        return known if known is not None else self._shipment(tracking_number).shipment_id

    def erasure_receipt(self, tracking_number: str) -> ErasureReceipt | None:
        """The receipt of an erased parcel; None while it is not erased."""
        record = self.store.erasure(self._shipment(tracking_number).shipment_id)
        return None if record is None else parse_receipt(record.receipt)

    def erase_expired(
        self, now: int, retention_seconds: int, *, dry_run: bool = False
    ) -> RetentionResult:
        """Erase (reason ``retention``) every shipment whose last activity — the latest event
        recorded, or its creation when it has none — lies more than ``retention_seconds``
        before ``now``. ``retention_seconds <= 0`` means retention is off: nothing happens. A dry
        run only lists the shipments it would erase."""
        if retention_seconds <= 0:
            return RetentionResult(cutoff=0, erased=(), dry_run=dry_run)
        cutoff = now - retention_seconds
        if dry_run:
            idle = self.store.idle_shipments(cutoff, 1_000_000)
            return RetentionResult(cutoff, tuple(s.shipment_id for s in idle), dry_run=True)
        erased: list[str] = []
        tried: set[str] = set()
        while True:
            batch = [
                s
                for s in self.store.idle_shipments(cutoff, RETENTION_BATCH)
                if s.shipment_id not in tried
            ]
            if not batch:
                break
            for shipment in batch:
                tried.add(shipment.shipment_id)
                try:
                    self._erase(shipment, RETENTION)
                except ConflictError:
                    continue  # it got an event meanwhile: not idle any more
                erased.append(shipment.shipment_id)
        return RetentionResult(cutoff, tuple(erased))

    def _erase(self, shipment: ShipmentRecord, reason: str) -> ErasureReceipt:
        for attempt in range(1, ERASE_ATTEMPTS + 1):
            existing = self.store.erasure(shipment.shipment_id)
            if existing is not None:
                return parse_receipt(existing.receipt)
            if self._erasure_key is None:
                raise KeyStateError(
                    "this node holds no key to sign erasure receipts: build it with the "
                    "anchoring account's key (erasure_signer)"
                )
            last = self.store.last_event(shipment.shipment_id)
            count = last.sequence + 1 if last else 0
            last_commitment = last.commitment if last else ZERO32
            erasure = eip712.Erasure(
                log_id=self.courier_id,
                shipment=shipment.ref,
                event_count=count,
                last_commitment=last_commitment,
                erased_at=self.clock.now(),
                reason=reason,
            )
            receipt = sign_receipt(self._erasure_key, self.domain, erasure)
            record = ErasureRecord(
                shipment_id=shipment.shipment_id,
                erased_at=erasure.erased_at,
                reason=reason,
                receipt=receipt.canonical(),
            )
            try:
                stored = self.store.destroy_data_key(
                    record, event_count=count, last_commitment=last_commitment
                )
            except ConflictError:
                # An event landed between reading the chain and destroying the key: step aside
                # a little longer each time, so steady traffic cannot starve the erasure.
                time.sleep(ERASE_BACKOFF * attempt * secrets.SystemRandom().random())
                continue
            return receipt if stored == record else parse_receipt(stored.receipt)
        raise ConflictError("the shipment kept getting events while it was being erased")


def _anchoring(
    leaf_index: int, landed: Sequence[CheckpointRecord], confirmed_size: int
) -> tuple[str, CheckpointRecord | None]:
    """An event's anchoring state and the first landed checkpoint that includes it."""
    first = next((c for c in landed if c.size > leaf_index), None)
    if first is None:
        return "pending", None
    return ("confirmed" if leaf_index < confirmed_size else "anchored"), first


def _prefetched(
    store: Store, inclusions: Sequence[tuple[int, int]], consistencies: Sequence[tuple[int, int]]
) -> merkle.NodeReader:
    """A node reader for these inclusion ``(index, size)`` and consistency ``(size1, size2)``
    proofs, holding every node they read, fetched in one batch (which nodes a proof reads
    depends on its coordinates only, so a dry run with blank hashes lists them)."""
    wanted: list[tuple[int, int]] = []

    def record(level: int, index: int) -> bytes:
        wanted.append((level, index))
        return bytes(merkle.HASH_SIZE)

    for index, size in inclusions:
        merkle.inclusion_proof(record, index, size)
    for size1, size2 in consistencies:
        merkle.consistency_proof(record, size1, size2)
    coords = list(dict.fromkeys(wanted))
    found = dict(zip(coords, store.nodes(coords), strict=True))

    def read(level: int, index: int) -> bytes:
        return found[(level, index)]

    return read


def _key_of(account: Any) -> bytes | None:
    """The private key of a local account (eth-account's LocalAccount), if it is one."""
    key = getattr(account, "key", None)
    if isinstance(key, bytes | bytearray) and len(key) == 32:
        return bytes(key)
    return None


def request_digest(
    shipment: bytes, openings: Sequence[FieldOpening], event_time: int, agent: str, signature: bytes
) -> bytes:
    """SHA-256 of an ingest request's canonical form (what idempotent replays must match)."""
    body: dict[str, JsonValue] = {
        "shipment": shipment.hex(),
        "fields": [o.to_json() for o in sorted(openings, key=lambda o: o.name)],
        "eventTime": event_time,
        "agent": agent.lower(),
        "signature": signature.hex(),
    }
    return hashlib.sha256(jcs.dumps(body)).digest()


def _aborted(refused: int) -> BatchAbortedError:
    return BatchAbortedError(
        f"not stored: event {refused} of this all-or-nothing batch was refused"
    )


def _replay(existing: EventRecord, digest: bytes) -> EventRecord:
    if not hmac.compare_digest(existing.request_digest, digest):
        raise EventIdReusedError(f"event id {existing.event_id} was already used for another event")
    return existing


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()
