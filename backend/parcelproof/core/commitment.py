"""Salted event commitments, selective disclosure and the per-shipment hash chain.

Consensus-critical: pay extra attention. Every byte of a field digest and of an event
commitment is fixed by docs/proof-bundle.md; a change here orphans every anchored leaf.

- A *field opening* is ``(name, value, salt)`` with a fresh random 32-byte salt, and its digest
  is ``SHA-256(JCS([base64url_nopad(salt), name, value]))`` (RFC 8785 JCS, in the spirit of
  SD-JWT), so low-entropy values (a status, a postcode, a time) cannot be guessed from it.
- An *event commitment* hashes, after a domain tag, the log id, the shipment reference, the
  event's sequence within its shipment, the previous event's commitment (the hash chain) and
  the sorted digests of all the event's fields.
- A :class:`Disclosure` reveals some openings and lists only the digests of the others, sorted
  so that their order says nothing about which names were withheld.

Values are JSON strings, integers within the IEEE-754 safe range ``|n| <= 2**53 - 1``,
booleans, null, lists and objects with string keys; floating-point numbers are refused because
their canonical form is not portable across languages.

A verifier that sees only part of an event cannot tell whether two withheld digests carry the
same field name with different values; the node, which sees every opening on ingest, must
refuse duplicate names (:func:`event_commitment` only sees digests).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import itertools
import secrets
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias

import rfc8785

from parcelproof.core import jcs
from parcelproof.core.errors import (
    CommitmentMismatchError,
    FormatError,
    HashChainError,
    TrailingGarbageError,
)

JsonValue: TypeAlias = str | int | bool | list["JsonValue"] | dict[str, "JsonValue"] | None

ZERO32 = bytes(32)
EVENT_DOMAIN = b"parcelproof:event:v1"
SALT_SIZE = 32
DIGEST_SIZE = 32
MAX_NAME_LENGTH = 64
MAX_TRACKING_NUMBER_LENGTH = 64
MAX_FIELDS = 0xFFFF

_MAX_SAFE_INT = 2**53 - 1
_MAX_DEPTH = 32
_UINT64 = 1 << 64
_TRACKING_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_B64URL_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_OPENING_KEYS = frozenset({"name", "value", "salt"})


# --- shipment reference ---------------------------------------------------------------------


def normalize_tracking_number(tracking_number: str) -> str:
    """Return the canonical tracking number: trimmed, inner spaces and hyphens removed,
    upper-case ASCII letters and digits only, at most 64 characters.

    Error messages never echo the tracking number (it must not reach logs).
    """
    if not isinstance(tracking_number, str):
        raise FormatError("tracking number must be a string")
    compact = tracking_number.strip().replace(" ", "").replace("-", "")
    if not compact:
        raise FormatError("tracking number is empty")
    # Refuse non-ASCII before upper-casing: str.upper() maps e.g. U+0131 to "I", U+00DF to "SS".
    if not compact.isascii() or not set(compact.upper()) <= _TRACKING_ALPHABET:
        raise FormatError("tracking number may hold only letters A-Z, digits, spaces and hyphens")
    if len(compact) > MAX_TRACKING_NUMBER_LENGTH:
        raise FormatError(
            f"tracking number has {len(compact)} characters, at most "
            f"{MAX_TRACKING_NUMBER_LENGTH} allowed"
        )
    return compact.upper()


def shipment_ref(shipment_key: bytes, tracking_number: str) -> bytes:
    """Return ``HMAC-SHA256(shipment_key, normalized tracking number)``, the shipment's
    reference in commitments, signatures and bundles (never a plain hash)."""
    _check_bytes(shipment_key, "shipment key", 32)
    normalized = normalize_tracking_number(tracking_number)
    return hmac.new(bytes(shipment_key), normalized.encode("ascii"), hashlib.sha256).digest()


# --- field openings -------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldOpening:
    """One field of an event with its salt: what is needed to check its digest.

    Construction validates and deep-copies ``value`` into plain JSON types.
    """

    name: str
    value: JsonValue
    salt: bytes

    def __post_init__(self) -> None:
        _check_name(self.name)
        _check_bytes(self.salt, f"salt of field {self.name!r}", SALT_SIZE)
        object.__setattr__(self, "salt", bytes(self.salt))
        object.__setattr__(self, "value", _plain_json(self.value, f"field {self.name!r}", 0))

    def digest(self) -> bytes:
        """Return ``SHA-256(JCS([base64url_nopad(salt), name, value]))``."""
        return _digest(self.salt, self.name, self.value)

    def to_json(self) -> dict[str, JsonValue]:
        """Return ``{"name": ..., "value": ..., "salt": base64url_nopad(salt)}``."""
        return {
            "name": self.name,
            "value": _plain_json(self.value, "value", 0),
            "salt": _b64url_encode(self.salt),
        }

    @classmethod
    def from_json(cls, obj: object) -> FieldOpening:
        """Parse the form :meth:`to_json` produces; refuse anything else."""
        if not isinstance(obj, dict):
            raise FormatError("field opening must be an object")
        missing = _OPENING_KEYS - obj.keys()
        if missing:
            raise FormatError(f"field opening lacks {', '.join(sorted(missing))}")
        extra = obj.keys() - _OPENING_KEYS
        if extra:
            shown = ", ".join(sorted(repr(k) for k in extra))
            raise TrailingGarbageError(f"field opening has unknown keys {shown}")
        name = obj["name"]
        if not isinstance(name, str):
            raise FormatError("field opening name must be a string")
        salt = _b64url_decode(obj["salt"], f"salt of field {name!r}")
        return cls(name=name, value=obj["value"], salt=salt)


def field_digest(salt: bytes, name: str, value: JsonValue) -> bytes:
    """Return the digest of one field: ``SHA-256(JCS([base64url_nopad(salt), name, value]))``."""
    return FieldOpening(name=name, value=value, salt=salt).digest()


def open_fields(
    fields: Mapping[str, JsonValue], rng: Callable[[int], bytes] = secrets.token_bytes
) -> list[FieldOpening]:
    """Salt every field with a fresh 32-byte salt; return the openings sorted by name."""
    return [
        FieldOpening(name=name, value=fields[name], salt=rng(SALT_SIZE)) for name in sorted(fields)
    ]


def _digest(salt: bytes, name: str, value: JsonValue) -> bytes:
    try:
        canonical = jcs.dumps([_b64url_encode(salt), name, value])
    except rfc8785.CanonicalizationError as e:  # unreachable after validation; kept as a guard
        raise FormatError(f"field {name!r} cannot be canonicalized: {e}") from e
    return hashlib.sha256(canonical).digest()


# --- event commitment -----------------------------------------------------------------------


def event_commitment(
    log_id: bytes, shipment: bytes, sequence: int, previous: bytes, digests: Iterable[bytes]
) -> bytes:
    """Return the commitment to one event::

        SHA-256( EVENT_DOMAIN || 0x00 || log_id (32) || shipment (32) || sequence (uint64 BE)
                 || previous (32) || count (uint16 BE) || digests sorted ascending, 32 each )

    ``previous`` must be :data:`ZERO32` exactly when ``sequence`` is 0 (the chain's start);
    breaking that rule is malformed input and raises :class:`FormatError`, as do wrong lengths,
    an out-of-range sequence, no digests, more than 65535 digests or a duplicate digest.
    """
    _check_bytes(log_id, "log id", 32)
    _check_bytes(shipment, "shipment", 32)
    _check_sequence(sequence)
    _check_bytes(previous, "previous", 32)
    if sequence == 0 and previous != ZERO32:
        raise FormatError("event #0 starts the chain: its previous must be 32 zero bytes")
    if sequence != 0 and previous == ZERO32:
        raise FormatError(f"event #{sequence} must link to a previous commitment, not zero")
    ordered = list(digests)
    for i, d in enumerate(ordered):
        _check_bytes(d, f"digest[{i}]", DIGEST_SIZE)
    if not ordered:
        raise FormatError("an event commits to at least one field digest")
    if len(ordered) > MAX_FIELDS:
        raise FormatError(f"{len(ordered)} field digests, at most {MAX_FIELDS} allowed")
    ordered = sorted(bytes(d) for d in ordered)
    for a, b in itertools.pairwise(ordered):
        if a == b:
            raise FormatError(f"field digest {a.hex()} appears twice")
    preimage = b"".join(
        [
            EVENT_DOMAIN,
            b"\x00",
            bytes(log_id),
            bytes(shipment),
            sequence.to_bytes(8, "big"),
            bytes(previous),
            len(ordered).to_bytes(2, "big"),
            *ordered,
        ]
    )
    return hashlib.sha256(preimage).digest()


# --- selective disclosure -------------------------------------------------------------------


@dataclass(frozen=True)
class Disclosure:
    """One event as a reader sees it: some fields revealed, the others only as digests.

    Construction checks nothing; :meth:`commitment`, :meth:`verify` and :meth:`fields` raise
    :class:`FormatError` on malformed content (duplicate names or digests, wrong lengths).
    """

    log_id: bytes
    shipment: bytes
    sequence: int
    previous: bytes
    revealed: tuple[FieldOpening, ...]
    withheld: tuple[bytes, ...]

    def commitment(self) -> bytes:
        """Recompute the event commitment from the revealed openings and withheld digests."""
        self._check_names()
        digests = [o.digest() for o in self.revealed]
        return event_commitment(
            self.log_id, self.shipment, self.sequence, self.previous, [*digests, *self.withheld]
        )

    def verify(self, expected_commitment: bytes) -> None:
        """Raise :class:`CommitmentMismatchError` unless this recomputes to the commitment."""
        _check_bytes(expected_commitment, "expected commitment", 32)
        calculated = self.commitment()
        if not hmac.compare_digest(calculated, bytes(expected_commitment)):
            raise CommitmentMismatchError(
                bytes(expected_commitment), calculated, f"event #{self.sequence} commitment"
            )

    def fields(self) -> dict[str, JsonValue]:
        """Return the revealed fields as ``{name: value}`` (copies)."""
        self._check_names()
        return {o.name: _plain_json(o.value, o.name, 0) for o in self.revealed}

    def _check_names(self) -> None:
        seen: set[str] = set()
        for o in self.revealed:
            if not isinstance(o, FieldOpening):
                raise FormatError("revealed entries must be field openings")
            if o.name in seen:
                raise FormatError(f"field {o.name!r} is revealed twice")
            seen.add(o.name)


def disclose(
    log_id: bytes,
    shipment: bytes,
    sequence: int,
    previous: bytes,
    openings: Sequence[FieldOpening],
    reveal: Collection[str],
) -> Disclosure:
    """Build the disclosure of an event revealing the fields named in ``reveal``.

    Revealed openings are sorted by name, withheld digests ascending bytewise. Raises
    :class:`FormatError` for a name in ``reveal`` that is not a field of the event, duplicate
    field names, or anything :func:`event_commitment` refuses.
    """
    if isinstance(reveal, str | bytes):
        raise FormatError("reveal must be a collection of field names, not a single string")
    names = [o.name for o in openings]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise FormatError(f"field {dup[0]!r} appears twice in the event")
    wanted = set(reveal)
    unknown = wanted - set(names)
    if unknown:
        shown = ", ".join(repr(n) for n in sorted(unknown, key=str))
        raise FormatError(f"cannot reveal {shown}: not a field of this event")
    disclosure = Disclosure(
        log_id=bytes(log_id),
        shipment=bytes(shipment),
        sequence=sequence,
        previous=bytes(previous),
        revealed=tuple(sorted((o for o in openings if o.name in wanted), key=lambda o: o.name)),
        withheld=tuple(sorted(o.digest() for o in openings if o.name not in wanted)),
    )
    disclosure.commitment()  # fail now rather than at the reader's
    return disclosure


# --- the per-shipment hash chain ------------------------------------------------------------


def verify_chain(disclosures: Sequence[Disclosure], commitments: Sequence[bytes]) -> None:
    """Raise unless ``disclosures`` are a shipment's events on one log from its first event on.

    ``commitments[i]`` is the commitment claimed for ``disclosures[i]``. The chain must start
    at sequence 0 (previous = :data:`ZERO32`) and run 0, 1, 2, … without gaps; each event's
    ``previous`` must equal the preceding commitment, all events must share the first one's log
    id and shipment, and each disclosure must recompute to its commitment. The first broken link
    raises :class:`HashChainError` (missing, reordered, duplicated or foreign event, wrong
    previous) or :class:`CommitmentMismatchError`. A chain that is merely cut short after its
    last event cannot be detected here (a withheld tail).
    """
    if len(disclosures) != len(commitments):
        raise FormatError(f"{len(disclosures)} disclosures but {len(commitments)} commitments")
    if not disclosures:
        raise FormatError("an empty chain proves nothing")
    first = disclosures[0]
    sequences = [d.sequence for d in disclosures]
    previous = ZERO32
    for i, (d, c) in enumerate(zip(disclosures, commitments, strict=True)):
        if d.log_id != first.log_id or d.shipment != first.shipment:
            raise HashChainError(
                i, f"event at position {i} belongs to another log or shipment than event #0"
            )
        if d.sequence != i:
            raise HashChainError(i, _sequence_break(i, d.sequence, sequences))
        if d.previous != previous:
            after = "the start of the chain (zero)" if i == 0 else f"event #{i - 1}"
            raise HashChainError(
                i,
                f"event #{i} does not link to {after}: previous is {bytes(d.previous).hex()}, "
                f"expected {previous.hex()}",
            )
        d.verify(c)
        previous = bytes(c)


def _sequence_break(i: int, found: int, sequences: list[int]) -> str:
    if found < i:
        return f"event #{found} appears again at position {i} (duplicated or reordered)"
    if i in sequences[i + 1 :]:
        j = sequences.index(i, i + 1)
        return f"event #{i} is out of order: it is at position {j}, position {i} holds #{found}"
    return f"event #{i} is missing: position {i} holds #{found}"


# --- encoding helpers -----------------------------------------------------------------------


def _b64url_encode(raw: bytes) -> str:
    """Return base64url without padding (RFC 4648 §5, as SD-JWT salts)."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64url_decode(text: object, what: str = "value") -> bytes:
    """Decode canonical unpadded base64url strictly; :class:`FormatError` on anything else."""
    if not isinstance(text, str):
        raise FormatError(f"{what} must be a base64url string")
    if not set(text) <= _B64URL_ALPHABET or len(text) % 4 == 1:
        raise FormatError(f"{what} is not unpadded base64url")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):  # pragma: no cover - excluded by the checks above
        raise FormatError(f"{what} is not unpadded base64url") from None
    if _b64url_encode(raw) != text:
        raise FormatError(f"{what} is not canonical base64url (non-zero trailing bits)")
    return raw


# --- validation -----------------------------------------------------------------------------


def _check_bytes(value: object, what: str, size: int) -> None:
    if not isinstance(value, bytes | bytearray):
        raise FormatError(f"{what} must be bytes, got {type(value).__name__}")
    if len(value) != size:
        raise FormatError(f"{what} has {len(value)} bytes, want {size}")


def _check_sequence(sequence: object) -> None:
    if isinstance(sequence, bool) or not isinstance(sequence, int):
        raise FormatError("sequence must be an integer")
    if not 0 <= sequence < _UINT64:
        raise FormatError(f"sequence {sequence} outside [0, 2^64)")


def _check_name(name: object) -> None:
    if not isinstance(name, str):
        raise FormatError("field name must be a string")
    if not 1 <= len(name) <= MAX_NAME_LENGTH:
        raise FormatError(f"field name must have 1 to {MAX_NAME_LENGTH} characters")
    _check_utf8(name, "field name")


def _check_utf8(text: str, where: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise FormatError(f"{where} is not valid Unicode (lone surrogate)") from None


def _plain_json(value: object, where: str, depth: int) -> JsonValue:
    """Validate ``value`` as a JsonValue and return a deep copy in plain built-in types."""
    if depth > _MAX_DEPTH:
        raise FormatError(f"{where} is nested deeper than {_MAX_DEPTH} levels")
    if value is None:
        return None
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        if not -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT:
            raise FormatError(f"{where}: integer {value} outside the JSON-safe range ±(2^53 - 1)")
        return int(value)
    if isinstance(value, float):
        raise FormatError(f"{where}: floating-point numbers are not allowed ({value!r})")
    if isinstance(value, str):
        _check_utf8(value, where)
        return str(value)
    if isinstance(value, list):
        return [_plain_json(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, dict):
        out: dict[str, JsonValue] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise FormatError(f"{where}: object keys must be strings, got {type(k).__name__}")
            _check_utf8(k, f"{where} key")
            out[str(k)] = _plain_json(v, f"{where}.{k}", depth + 1)
        return out
    raise FormatError(f"{where}: {type(value).__name__} is not a JSON value")
