"""Signed webhooks: subscriptions, the signature scheme, the outbox dispatcher and its retries."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from parcelproof import __version__
from parcelproof.core import envelope
from parcelproof.core.commitment import FieldOpening
from parcelproof.core.errors import Error, FormatError, NotFoundError, VerificationError
from parcelproof.service.audit import AuditAction
from parcelproof.service.ports import AuditSink, CheckpointRecord, Clock, SystemClock

log = logging.getLogger("parcelproof.webhooks")

#: Event types a subscription may ask for (``webhook.test`` is sent on request only).
STATUS_CHANGED = "shipment.status_changed"
CHECKPOINT_ANCHORED = "checkpoint.anchored"
TEST_EVENT = "webhook.test"
EVENT_TYPES = (STATUS_CHANGED, CHECKPOINT_ANCHORED)

SIGNATURE_HEADER = "ParcelProof-Signature"
EVENT_ID_HEADER = "ParcelProof-Event-Id"
EVENT_TYPE_HEADER = "ParcelProof-Event-Type"
DELIVERY_ID_HEADER = "ParcelProof-Delivery-Id"
USER_AGENT = f"ParcelProof-Webhooks/{__version__}"
SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
#: Seconds a signature's timestamp may differ from the receiver's clock.
DEFAULT_TOLERANCE = 300
MAX_URL_LENGTH = 2048
MAX_DESCRIPTION = 200
#: Seconds a claimed delivery stays hidden from other dispatchers while it is being sent.
CLAIM_LEASE = 120
#: Delivery states. ``pending``: not tried yet; ``retrying``: failed, another try is due at
#: ``next_attempt_at``; ``delivered``: a 2xx answer; ``failed``: gave up after the last
#: attempt; ``cancelled``: the subscription was deleted first.
OPEN_STATES = ("pending", "retrying")
_SEAL_PURPOSE = "webhook-secret"
_LOOPBACK_NAMES = frozenset({"localhost", "localhost."})


class WebhookSignatureError(VerificationError):
    """A webhook's signature header is malformed, stale, or does not match the body."""


# --- records ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subscription:
    """A subscriber's endpoint; the signing secret only sealed."""

    subscription_id: str
    url: str
    event_types: tuple[str, ...]
    description: str
    secret_sealed: bytes
    created_by: str
    created_at: int
    deleted_at: int | None = None


@dataclass(frozen=True)
class Attempt:
    """One HTTP attempt: its number (from 1), when, the status or the error, how long."""

    attempt: int
    at: int
    status_code: int | None
    error: str | None
    duration_ms: int


@dataclass(frozen=True)
class Delivery:
    """One event owed to one subscription, and where it stands."""

    delivery_id: str
    subscription_id: str
    event_id: str
    event_type: str
    source: str  # what the body is built from: an event id, a checkpoint size, "" (test)
    created_at: int
    state: str
    attempts: int
    next_attempt_at: int | None
    last_attempt_at: int | None
    history: tuple[Attempt, ...] = ()


@dataclass(frozen=True)
class EventSource:
    """What a ``shipment.status_changed`` body is built from (fields still sealed)."""

    event_id: str
    shipment_id: str
    sequence: int
    event_time: int
    recorded_at: int
    leaf_index: int
    commitment: bytes
    sealed_openings: bytes
    wrapped_key: envelope.WrappedKey | None  # None: the shipment was erased


class WebhookStore(Protocol):
    """Where subscriptions, deliveries and the dispatcher's cursors live (one log)."""

    @property
    def log_id(self) -> bytes: ...

    def add_subscription(self, subscription: Subscription) -> None: ...

    def subscription(self, subscription_id: str) -> Subscription | None:
        """An active (not deleted) subscription of this log."""
        ...

    def subscriptions(self, *, include_deleted: bool = False) -> list[Subscription]: ...

    def delete_subscription(self, subscription_id: str, at: int) -> bool:
        """Mark it deleted and cancel its open deliveries; False if not active here."""
        ...

    def set_secret(self, subscription_id: str, sealed: bytes) -> None: ...

    def fan_out(self, now: int, limit: int) -> int:
        """Turn events and landed checkpoints past the cursors into deliveries for the
        matching subscriptions, and move the cursors (one transaction, serialised)."""
        ...

    def add_delivery(self, delivery: Delivery) -> None: ...

    def due(self, now: int, limit: int) -> list[Delivery]: ...

    def claim(self, delivery_id: str, expected_next: int | None, lease_until: int) -> bool: ...

    def record_attempt(
        self, delivery_id: str, attempt: Attempt, state: str, next_attempt_at: int | None
    ) -> None: ...

    def delivery(self, delivery_id: str) -> Delivery | None: ...

    def deliveries(self, subscription_id: str, limit: int) -> list[Delivery]:
        """The newest deliveries of a subscription, with their attempts."""
        ...

    def event_source(self, event_id: str) -> EventSource | None: ...

    def checkpoint(self, size: int) -> CheckpointRecord | None: ...


def webhook_event_id(log_id: bytes, event_type: str, source: str) -> str:
    """The stable id of the webhook event about ``source``: the same on every retry (and for
    every subscription), so receivers can deduplicate."""
    digest = hashlib.sha256(b"\x00".join([log_id, event_type.encode(), source.encode()]))
    return "evt_" + digest.hexdigest()[:32]


def new_id(prefix: str) -> str:
    """A random id such as ``wh_…`` or ``dlv_…``."""
    return f"{prefix}_{secrets.token_hex(12)}"


# --- signatures -------------------------------------------------------------------------------


def new_secret() -> str:
    """A fresh signing secret: ``whsec_`` + 32 random bytes, base64url without padding."""
    return SECRET_PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The ``ParcelProof-Signature`` header value: ``t=<unix seconds>,v1=<hex HMAC-SHA256>``
    over ``f"{t}."`` followed by the raw body, keyed with the whole secret string."""
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


def verify_signature(
    secret: str, header: str, body: bytes, *, now: int, tolerance: int = DEFAULT_TOLERANCE
) -> int:
    """Check a ``ParcelProof-Signature`` header for a receiver; returns its timestamp.

    Raises :class:`WebhookSignatureError` when the header is malformed, its timestamp is more
    than ``tolerance`` seconds from ``now`` (a replay), or no ``v1`` signature matches ``body``
    (compared in constant time). Several ``v1`` entries are allowed (any may match)."""
    if not isinstance(header, str) or len(header) > 4096:
        raise WebhookSignatureError("malformed signature header")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise WebhookSignatureError("malformed signature header")
        if key == "t":
            if timestamp is not None or not value.isdigit() or len(value) > 12:
                raise WebhookSignatureError("malformed signature timestamp")
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise WebhookSignatureError("malformed signature header: needs t= and v1=")
    if abs(now - timestamp) > tolerance:
        raise WebhookSignatureError(
            f"signature timestamp is {abs(now - timestamp)}s away from now (tolerance "
            f"{tolerance}s): a replay or a wrong clock"
        )
    expected = _mac(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise WebhookSignatureError("signature does not match the body")
    return timestamp


# --- URLs -------------------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine (127.0.0.0/8, ::1, localhost)."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def forbidden_address(address: str) -> bool:
    """Whether a delivery may never go to ``address``: link-local (cloud metadata services
    live at 169.254.169.254), multicast, unspecified or reserved addresses, also inside
    IPv4-mapped IPv6. Loopback and private networks stay allowed (a local relay, an
    internal receiver); see docs/webhooks.md."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return False  # ::1 sits in a block Python calls reserved
    return ip.is_link_local or ip.is_multicast or ip.is_unspecified or ip.is_reserved


class ForbiddenDestinationError(Error):
    """The webhook's host is, or resolves to, an address deliveries may not go to."""


def check_destination(url: str) -> None:
    """Resolve the URL's host now, just before sending: ForbiddenDestinationError when any of
    its addresses is :func:`forbidden_address` (a name may point there after registration)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return  # the HTTP client reports the failure to resolve as a network error
    if any(forbidden_address(str(info[4][0])) for info in infos):
        raise ForbiddenDestinationError("the host resolves to an address deliveries may not use")


def check_url(url: str) -> str:
    """An endpoint URL a subscription may use: absolute https (http only to loopback), no
    credentials, no fragment, at most :data:`MAX_URL_LENGTH` characters. FormatError naming
    the rule (never echoing the URL, which may hold a token)."""
    if not isinstance(url, str) or not url.strip():
        raise FormatError("url must not be empty")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise FormatError(f"url is longer than {MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise FormatError("url must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise FormatError("url is not a valid absolute URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise FormatError("url must use https (http only to a loopback address)")
    host = parts.hostname or ""
    if not host:
        raise FormatError("url must be absolute, with a host")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise FormatError("url must not hold credentials: authenticate with the signature")
    if parts.fragment or url.endswith("#"):
        raise FormatError("url must not have a fragment")
    if port == 0:
        raise FormatError("url has an invalid port")
    if scheme == "http" and not is_loopback(host):
        raise FormatError("url must use https (http only to 127.0.0.0/8, ::1 or localhost)")
    if forbidden_address(host):
        raise FormatError("url must not point at a link-local, multicast or reserved address")
    return url


def check_event_types(types: Iterable[str]) -> tuple[str, ...]:
    """The sorted, deduplicated event types; FormatError on an unknown or empty list."""
    chosen = sorted(set(types))
    if not chosen:
        raise FormatError(f"event_types must name at least one of: {', '.join(EVENT_TYPES)}")
    unknown = [t for t in chosen if t not in EVENT_TYPES]
    if unknown:
        raise FormatError(
            f"unknown event type(s) {', '.join(repr(t[:64]) for t in unknown)}; "
            f"known: {', '.join(EVENT_TYPES)}"
        )
    return tuple(chosen)


# --- retries ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential back-off: attempt n (from 1) failing waits ``base * 2**(n-1)`` seconds,
    stretched by up to ``jitter`` (a fraction), capped at ``max_delay``; after
    ``max_attempts`` attempts the delivery has failed."""

    base_seconds: float = 10.0
    max_attempts: int = 8
    max_delay: float = 6 * 3600.0
    jitter: float = 0.1
    timeout_seconds: float = 5.0

    def __post_init__(self) -> None:
        if self.base_seconds <= 0 or self.max_attempts < 1 or not 0 <= self.jitter <= 1:
            raise ValueError("base must be > 0, max_attempts >= 1, jitter within [0, 1]")

    def delay(self, attempt: int, rng: Callable[[], float] = random.random) -> int:
        """Seconds to wait after failed attempt ``attempt`` (whole seconds, at least 1)."""
        nominal = min(self.max_delay, self.base_seconds * 2.0 ** min(attempt - 1, 32))
        return max(1, round(nominal * (1.0 + self.jitter * float(rng()))))


# --- the service ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Created:
    """A new subscription and its signing secret (shown once)."""

    subscription: Subscription
    secret: str


@dataclass(frozen=True)
class DispatchResult:
    """What one dispatcher cycle did."""

    queued: int
    attempted: int
    delivered: int


@dataclass
class WebhookService:
    """One courier log's webhooks: manage subscriptions, queue and send signed deliveries.

    ``transport`` lets tests talk to an in-process app; by default a real HTTP connection is
    made (no redirects followed, ``policy.timeout_seconds``)."""

    store: WebhookStore
    keyring: envelope.Keyring
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    clock: Clock = field(default_factory=SystemClock)
    audit: AuditSink | None = None
    rng: Callable[[], float] = random.random
    transport: httpx.BaseTransport | None = None
    monotonic: Callable[[], float] = time.monotonic

    # --- subscriptions --------------------------------------------------------------------

    def create(
        self, actor: str, url: str, event_types: Sequence[str], description: str = ""
    ) -> Created:
        """Register an endpoint; returns the subscription and its secret (never shown again)."""
        url = check_url(url)
        types = check_event_types(event_types)
        if len(description) > MAX_DESCRIPTION:
            raise FormatError(f"description is longer than {MAX_DESCRIPTION} characters")
        subscription_id = new_id("wh")
        secret = new_secret()
        subscription = Subscription(
            subscription_id=subscription_id,
            url=url,
            event_types=types,
            description=description,
            secret_sealed=self._seal(subscription_id, secret),
            created_by=actor,
            created_at=self.clock.now(),
        )
        if self.audit is not None:  # record first: an action that cannot be recorded fails
            self.audit.record(
                actor,
                AuditAction.WEBHOOK_CREATE,
                subscription_id,
                {"event_types": ",".join(types), "scheme": urlsplit(url).scheme},
            )
        self.store.add_subscription(subscription)
        log.info("webhook subscription created", extra={"subscription": subscription_id})
        return Created(subscription, secret)

    def get(self, subscription_id: str) -> Subscription:
        found = self.store.subscription(subscription_id)
        if found is None:
            raise NotFoundError("no such webhook subscription on this node")
        return found

    def subscriptions(self) -> list[Subscription]:
        return self.store.subscriptions()

    def delete(self, actor: str, subscription_id: str) -> None:
        """Delete a subscription: nothing more is sent to it (open deliveries are cancelled);
        its delivery log stays readable for no one through the API, in the database."""
        self.get(subscription_id)
        if self.audit is not None:
            self.audit.record(actor, AuditAction.WEBHOOK_DELETE, subscription_id, {})
        if not self.store.delete_subscription(subscription_id, self.clock.now()):
            raise NotFoundError("no such webhook subscription on this node")
        log.info("webhook subscription deleted", extra={"subscription": subscription_id})

    def deliveries(self, subscription_id: str, limit: int = 100) -> list[Delivery]:
        self.get(subscription_id)
        return self.store.deliveries(subscription_id, limit)

    def send_test(self, subscription_id: str) -> Delivery:
        """Queue a ``webhook.test`` event for the subscription and try it now; returns the
        delivery with its first attempt (a failure is retried like any other delivery)."""
        subscription = self.get(subscription_id)
        now = self.clock.now()
        delivery = Delivery(
            delivery_id=new_id("dlv"),
            subscription_id=subscription.subscription_id,
            event_id=new_id("evt"),
            event_type=TEST_EVENT,
            source="",
            created_at=now,
            state="pending",
            attempts=0,
            next_attempt_at=now,
            last_attempt_at=None,
        )
        self.store.add_delivery(delivery)
        if self.store.claim(delivery.delivery_id, now, now + CLAIM_LEASE):
            self._attempt(delivery, subscription)
        result = self.store.delivery(delivery.delivery_id)
        assert result is not None  # noqa: S101 - just stored
        return result

    def rewrap_secrets(self) -> int:
        """Re-seal every signing secret not under the keyring's active key (`keys rotate`)."""
        count = 0
        for sub in self.store.subscriptions(include_deleted=True):
            if json.loads(sub.secret_sealed)["key"]["kid"] == self.keyring.active_kid:
                continue
            secret = self._open(sub.subscription_id, sub.secret_sealed)
            self.store.set_secret(sub.subscription_id, self._seal(sub.subscription_id, secret))
            count += 1
        return count

    # --- dispatching ----------------------------------------------------------------------

    def dispatch_once(self, *, batch: int = 100) -> DispatchResult:
        """One cycle: queue deliveries for what happened since the last cycle, then send
        every delivery that is due (oldest due first)."""
        now = self.clock.now()
        queued = self.store.fan_out(now, batch * 5)
        attempted = delivered = 0
        subscriptions: dict[str, Subscription | None] = {}
        for delivery in self.store.due(now, batch):
            if not self.store.claim(
                delivery.delivery_id, delivery.next_attempt_at, now + CLAIM_LEASE
            ):
                continue  # another dispatcher took it
            sid = delivery.subscription_id
            if sid not in subscriptions:
                subscriptions[sid] = self.store.subscription(sid)
            subscription = subscriptions[sid]
            if subscription is None:
                continue  # deleted meanwhile: its deliveries were cancelled
            attempted += 1
            if self._attempt(delivery, subscription) == "delivered":
                delivered += 1
        return DispatchResult(queued, attempted, delivered)

    def run(self, stop: threading.Event, *, tick: float = 1.0) -> None:
        """Dispatch every ``tick`` seconds until ``stop`` is set; failures are logged and the
        next cycle tries again (never raises a ParcelProof error)."""
        log.info("webhook dispatcher started")
        while not stop.is_set():
            try:
                self.dispatch_once()
            except Error as e:
                log.warning("webhook dispatch failed (%s); retrying", type(e).__name__)
            except Exception as e:  # a bug must not stop deliveries for good
                log.error("webhook dispatch crashed: %s", type(e).__name__)
            stop.wait(tick)
        log.info("webhook dispatcher stopped")

    def body(self, delivery: Delivery) -> bytes:
        """The JSON body of a delivery, built from its source (the same bytes on every try,
        unless the shipment was erased meanwhile: then its status is ``null``)."""
        data: dict[str, Any]
        if delivery.event_type == STATUS_CHANGED:
            data = self._status_data(delivery.source)
        elif delivery.event_type == CHECKPOINT_ANCHORED:
            data = self._checkpoint_data(int(delivery.source))
        else:
            data = {
                "subscriptionId": delivery.subscription_id,
                "message": "a test event from your ParcelProof node",
            }
        payload = {
            "id": delivery.event_id,
            "type": delivery.event_type,
            "created": delivery.created_at,
            "logId": "0x" + self.store.log_id.hex(),
            "data": data,
        }
        return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()

    # --- internals ------------------------------------------------------------------------

    def _attempt(self, delivery: Delivery, subscription: Subscription) -> str:
        number = delivery.attempts + 1
        at = self.clock.now()
        started = self.monotonic()
        status_code: int | None = None
        error: str | None = None
        try:
            body = self.body(delivery)
            secret = self._open(subscription.subscription_id, subscription.secret_sealed)
            if self.transport is None:  # tests may route to an in-process transport
                check_destination(subscription.url)
            status_code = self._post(subscription.url, delivery, body, secret, at)
        except httpx.TimeoutException:
            error = "timeout"
        except httpx.HTTPError as e:
            error = f"network error ({type(e).__name__})"
        except ForbiddenDestinationError:
            error = "forbidden destination (link-local, multicast or reserved address)"
        except Error as e:  # e.g. a key no longer in the keyring, a source gone
            error = f"cannot build the delivery ({type(e).__name__})"
        duration_ms = int((self.monotonic() - started) * 1000)
        ok = status_code is not None and 200 <= status_code < 300
        if ok:
            state, next_at = "delivered", None
        elif number >= self.policy.max_attempts:
            state, next_at = "failed", None
        else:
            state, next_at = "retrying", at + self.policy.delay(number, self.rng)
        self.store.record_attempt(
            delivery.delivery_id,
            Attempt(number, at, status_code, error, duration_ms),
            state,
            next_at,
        )
        # Ids and outcomes only: never the body, the URL or the secret.
        log.info(
            "webhook attempt",
            extra={
                "delivery": delivery.delivery_id,
                "subscription": subscription.subscription_id,
                "event_type": delivery.event_type,
                "attempt": number,
                "status": status_code,
                "error": error,
                "state": state,
                "ms": duration_ms,
            },
        )
        return state

    def _post(self, url: str, delivery: Delivery, body: bytes, secret: str, at: int) -> int:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: sign(secret, body, at),
            EVENT_ID_HEADER: delivery.event_id,
            EVENT_TYPE_HEADER: delivery.event_type,
            DELIVERY_ID_HEADER: delivery.delivery_id,
        }
        with httpx.Client(
            timeout=self.policy.timeout_seconds,
            follow_redirects=False,
            transport=self.transport,
        ) as client:
            response = client.post(url, content=body, headers=headers)
        return response.status_code

    def _status_data(self, event_id: str) -> dict[str, Any]:
        source = self.store.event_source(event_id)
        if source is None:
            raise NotFoundError("the event of this delivery is not stored")
        status: Any = None
        corrected: Any = None
        if source.wrapped_key is not None:
            fields = self._fields(source)
            status, corrected = fields.get("status"), fields.get("corrected_status")
        data: dict[str, Any] = {
            "eventId": source.event_id,
            "shipmentId": source.shipment_id,
            "sequence": source.sequence,
            "status": status,
            "eventTime": source.event_time,
            "recordedAt": source.recorded_at,
            "leafIndex": source.leaf_index,
            "commitment": "0x" + source.commitment.hex(),
            "erased": source.wrapped_key is None,
        }
        if corrected is not None:
            data["correctedStatus"] = corrected
        return data

    def _fields(self, source: EventSource) -> Mapping[str, Any]:
        assert source.wrapped_key is not None  # noqa: S101 - checked by the caller
        data_key = envelope.unwrap_data_key(self.keyring, source.wrapped_key, source.shipment_id)
        plain = envelope.open_sealed(
            data_key,
            source.sealed_openings,
            shipment_id=source.shipment_id,
            event_id=source.event_id,
            purpose="event",
        )
        return {o.name: o.value for o in (FieldOpening.from_json(x) for x in json.loads(plain))}

    def _checkpoint_data(self, size: int) -> dict[str, Any]:
        cp = self.store.checkpoint(size)
        if cp is None:
            raise NotFoundError("the checkpoint of this delivery is not stored")
        return {
            "size": cp.size,
            "root": "0x" + cp.root.hex(),
            "txHash": "0x" + cp.tx_hash.hex() if cp.tx_hash else None,
            "blockNumber": cp.block_number,
            "status": cp.status,
        }

    def _seal(self, subscription_id: str, secret: str) -> bytes:
        owner = f"webhook-{subscription_id}"
        return envelope.seal_secret(self.keyring, owner, secret, purpose=_SEAL_PURPOSE)

    def _open(self, subscription_id: str, blob: bytes) -> str:
        owner = f"webhook-{subscription_id}"
        return envelope.open_secret(self.keyring, owner, blob, purpose=_SEAL_PURPOSE)
