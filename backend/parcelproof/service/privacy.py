"""Data-subject rights on a courier node: signed erasure receipts, their verification, and the
retention rule. The use cases themselves (export, erase, erase_expired) are methods of
:class:`~parcelproof.service.node.CourierNode`; docs/privacy.md describes the formats.

An erasure receipt is the EIP-712 ``ParcelErasure`` message (core/eip712.py) signed by the
courier's anchoring account, wrapped in JSON::

    {"format": "parcelproof-erasure-receipt", "version": 1,
     "chain": {"chainId": 31337, "ledger": "0x…"},
     "erasure": {"logId": "0x…32", "shipment": "0x…32", "eventCount": 3,
                 "lastCommitment": "0x…32", "erasedAt": 1790000000, "reason": "request"},
     "signer": "0x…checksum address", "signature": "0x…65 bytes r‖s‖v"}

It proves that the courier whose account is named on the ledger declared, at ``erasedAt``,
the destruction of the keys of that shipment after exactly ``eventCount`` events ending in
``lastCommitment`` (so a later event, or a withheld one, contradicts the receipt).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import rfc8785

from parcelproof.core import eip712
from parcelproof.core.encoding import parse_address, parse_hex
from parcelproof.core.errors import (
    ContractRevertError,
    Error,
    FormatError,
    SignatureError,
    TrailingGarbageError,
    VerificationError,
)
from parcelproof.service.ports import AuditSink

RECEIPT_FORMAT = "parcelproof-erasure-receipt"
RECEIPT_VERSION = 1
EXPORT_FORMAT = "parcelproof-export"
EXPORT_VERSION = 1
DAY = 86400
RETRY_SECONDS = 600  # a failed retention run is tried again this much later
RETENTION_ACTOR = "worker:retention"  # the audit actor of retention erasures
log = logging.getLogger("parcelproof.privacy")

#: Why a shipment was erased: the data subject asked (through the courier), a legal
#: obligation, or the retention period ran out (the retention job only).
REQUEST, LEGAL, RETENTION = "request", "legal", "retention"
REASONS = frozenset({REQUEST, LEGAL, RETENTION})
#: Reasons an operator may give; ``retention`` is the retention job's.
OPERATOR_REASONS = frozenset({REQUEST, LEGAL})


class CourierRecord(Protocol):
    """A courier as the ledger records it (only its anchoring account matters here)."""

    @property
    def account(self) -> str: ...


class CourierAccounts(Protocol):
    """The ledger reads receipt verification needs: which chain and contract, and the
    anchoring account of a courier (``ParcelLedger.courier``)."""

    @property
    def chain_id(self) -> int: ...

    @property
    def address(self) -> str: ...

    def courier(self, courier_id: bytes) -> CourierRecord: ...


@dataclass(frozen=True)
class ErasureReceipt:
    """A signed erasure receipt."""

    domain: eip712.Domain
    erasure: eip712.Erasure
    signer: str
    signature: bytes

    def to_json(self) -> dict[str, Any]:
        """The receipt's JSON object (the format in the module docstring)."""
        e = self.erasure
        return {
            "format": RECEIPT_FORMAT,
            "version": RECEIPT_VERSION,
            "chain": {
                "chainId": self.domain.chain_id,
                "ledger": self.domain.verifying_contract,
            },
            "erasure": {
                "logId": "0x" + e.log_id.hex(),
                "shipment": "0x" + e.shipment.hex(),
                "eventCount": e.event_count,
                "lastCommitment": "0x" + e.last_commitment.hex(),
                "erasedAt": e.erased_at,
                "reason": e.reason,
            },
            "signer": self.signer,
            "signature": "0x" + self.signature.hex(),
        }

    def canonical(self) -> str:
        """RFC 8785 canonical JSON of :meth:`to_json` (what the node stores)."""
        return bytes(rfc8785.dumps(self.to_json())).decode()


def sign_receipt(
    private_key: bytes, domain: eip712.Domain, erasure: eip712.Erasure
) -> ErasureReceipt:
    """Sign ``erasure`` with the courier's anchoring account key."""
    from eth_account import Account

    signature = eip712.sign_erasure(private_key, domain, erasure)
    signer = str(Account.from_key(private_key).address)
    return ErasureReceipt(domain=domain, erasure=erasure, signer=signer, signature=signature)


def _expect(obj: object, where: str, keys: frozenset[str]) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise FormatError(f"{where} must be an object")
    missing = keys - obj.keys()
    if missing:
        raise FormatError(f"{where} lacks {', '.join(sorted(missing))}")
    extra = obj.keys() - keys
    if extra:
        raise TrailingGarbageError(f"{where} has unknown keys {', '.join(sorted(extra))}")
    return obj


def _uint64(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 64:
        raise FormatError(f"{where} must be an integer in [0, 2^64)")
    return value


_RECEIPT_KEYS = frozenset({"format", "version", "chain", "erasure", "signer", "signature"})
_ERASURE_KEYS = frozenset(
    {"logId", "shipment", "eventCount", "lastCommitment", "erasedAt", "reason"}
)


def parse_receipt(obj: object) -> ErasureReceipt:
    """Parse a receipt's JSON object (or its text) strictly; FormatError on anything off."""
    if isinstance(obj, str | bytes):
        try:
            obj = json.loads(obj)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise FormatError(f"an erasure receipt must be JSON: {error}") from None
    o = _expect(obj, "receipt", _RECEIPT_KEYS)
    if o["format"] != RECEIPT_FORMAT:
        raise FormatError(f"receipt.format must be {RECEIPT_FORMAT!r}")
    if type(o["version"]) is not int or o["version"] != RECEIPT_VERSION:
        raise FormatError(f"unsupported receipt version {o['version']!r}, this reader reads 1")
    chain = _expect(o["chain"], "receipt.chain", frozenset({"chainId", "ledger"}))
    e = _expect(o["erasure"], "receipt.erasure", _ERASURE_KEYS)
    domain = eip712.Domain(
        chain_id=_uint64(chain["chainId"], "receipt.chain.chainId"),
        verifying_contract=parse_address(chain["ledger"], "receipt.chain.ledger"),
    )
    if not isinstance(e["reason"], str):
        raise FormatError("receipt.erasure.reason must be a string")
    erasure = eip712.Erasure(
        log_id=parse_hex(e["logId"], "receipt.erasure.logId", 32),
        shipment=parse_hex(e["shipment"], "receipt.erasure.shipment", 32),
        event_count=_uint64(e["eventCount"], "receipt.erasure.eventCount"),
        last_commitment=parse_hex(e["lastCommitment"], "receipt.erasure.lastCommitment", 32),
        erased_at=_uint64(e["erasedAt"], "receipt.erasure.erasedAt"),
        reason=e["reason"],
    )
    return ErasureReceipt(
        domain=domain,
        erasure=erasure,
        signer=parse_address(o["signer"], "receipt.signer"),
        signature=parse_hex(o["signature"], "receipt.signature", eip712.SIGNATURE_SIZE),
    )


def verify_receipt(
    receipt: ErasureReceipt | Mapping[str, Any] | str, ledger: CourierAccounts | None = None
) -> ErasureReceipt:
    """Check an erasure receipt; return it parsed.

    Always: the EIP-712 ``ParcelErasure`` signature recovers to ``signer``
    (:class:`SignatureError` otherwise). With ``ledger``: the receipt names the chain and
    contract the ledger reads, and ``signer`` is the anchoring account the ledger records for
    the courier ``logId`` (:class:`VerificationError` otherwise). Without a ledger only the
    first holds: anyone can sign a receipt with a key of their own.
    """
    r = receipt if isinstance(receipt, ErasureReceipt) else parse_receipt(receipt)
    eip712.verify_erasure_signature(r.domain, r.erasure, r.signature, r.signer)
    if ledger is None:
        return r
    same = (
        r.domain.chain_id == ledger.chain_id
        and r.domain.verifying_contract.lower() == ledger.address.lower()
    )
    if not same:
        raise VerificationError(
            f"the receipt names chain {r.domain.chain_id} contract "
            f"{r.domain.verifying_contract}, the ledger read is chain {ledger.chain_id} "
            f"contract {ledger.address}"
        )
    try:
        account = ledger.courier(r.erasure.log_id).account
    except ContractRevertError as e:
        raise VerificationError(f"the ledger does not know the receipt's courier: {e}") from e
    if account.lower() != r.signer.lower():
        raise SignatureError(
            f"the receipt is signed by {r.signer}, but the ledger's anchoring account of "
            f"courier 0x{r.erasure.log_id.hex()} is {account}"
        )
    return r


def check_reason(reason: str, allowed: frozenset[str] = REASONS) -> str:
    """``reason`` if it is one of ``allowed``; FormatError otherwise."""
    if reason not in allowed:
        raise FormatError(f"erasure reason must be one of {', '.join(sorted(allowed))}")
    return reason


@dataclass(frozen=True)
class ErasureNotice:
    """What a lookup of an erased parcel tells about one courier log: when, why, and the
    receipt (as JSON)."""

    log_id: bytes
    erased_at: int
    reason: str
    receipt: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "logId": "0x" + self.log_id.hex(),
            "erasedAt": self.erased_at,
            "reason": self.reason,
            "receipt": self.receipt,
        }


@dataclass(frozen=True)
class RetentionResult:
    """What a retention run did (or, dry, would do): shipment ids and their receipts."""

    cutoff: int
    erased: tuple[str, ...]
    dry_run: bool = False


def utc(timestamp: int) -> str:
    """A Unix time as ``YYYY-MM-DD HH:MM UTC`` (for messages)."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def retention_seconds(days: int) -> int:
    """The retention period in seconds; 0 (retention off) for 0 days."""
    if isinstance(days, bool) or not isinstance(days, int) or days < 0:
        raise FormatError("the retention period is a whole number of days, 0 or more")
    return days * DAY


class Clock(Protocol):
    def now(self) -> int: ...


class RetentionNode(Protocol):
    """What the retention job needs of a courier node."""

    @property
    def clock(self) -> Clock: ...

    def erase_expired(
        self, now: int, retention_seconds: int, *, dry_run: bool = False
    ) -> RetentionResult: ...


class RetentionJob:
    """The retention rule on a schedule: :meth:`run_if_due` erases the node's expired
    shipments at most once per ``every`` seconds (a day), so the anchoring worker can call it
    every cycle. It never raises a ParcelProof error: a failed run is logged and tried again
    :data:`RETRY_SECONDS` later."""

    def __init__(
        self,
        node: RetentionNode,
        retention_seconds: int,
        *,
        every: float = DAY,
        audit: AuditSink | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if retention_seconds < 0 or every <= 0:
            raise FormatError("retention and its interval must not be negative")
        self.node = node
        self.retention_seconds = retention_seconds
        self.every = every
        self.audit = audit
        self._monotonic = monotonic
        self._next: float | None = None  # due at once the first time

    def run_if_due(self) -> RetentionResult | None:
        """Run the retention rule if it is due (and on); None when it did not run or failed."""
        if self.retention_seconds <= 0:
            return None
        now = self._monotonic()
        if self._next is not None and now < self._next:
            return None
        try:
            result = self.node.erase_expired(self.node.clock.now(), self.retention_seconds)
        except Error as e:
            self._next = now + RETRY_SECONDS
            log.warning("retention run failed (%s); retrying later", type(e).__name__)
            return None
        self._next = now + self.every
        for shipment_id in result.erased:
            if self.audit is not None:
                try:
                    self.audit.record(
                        RETENTION_ACTOR, "privacy.erase", shipment_id, {"reason": RETENTION}
                    )
                except Error as e:
                    log.error("retention erasure not audited: %s", type(e).__name__)
        if result.erased:
            log.info("retention erased %d shipments", len(result.erased))
        return result
