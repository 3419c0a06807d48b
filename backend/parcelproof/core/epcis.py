"""GS1 EPCIS 2.0 JSON-LD mapping of shipment events: export document, import rows, CBV table.

Pure: no schema file is read here (``service/epcis.py`` validates against the vendored GS1
schema before calling :func:`parse_events`). docs/epcis.md fixes the table and identifiers.

- :data:`CBV` maps each :class:`Status` to a distinct (bizStep, disposition) pair, so an
  exported event imports back to the status it was exported from.
- The parcel is ``urn:parcelproof:parcel:<normalized tracking number>`` (never a made-up
  SSCC); imports also accept a real SSCC (EPC URN or GS1 Digital Link, check digit verified),
  whose 18 digits are then the tracking number.
- A ``place`` that is already a URI is the readPoint id as is; any other place becomes
  ``urn:parcelproof:place:<percent-encoded place>``.
- Custody handoffs name the other courier's log as ``possessing_party`` in sourceList or
  destinationList; the countersignature fields travel in the ``parcelproof:handoff``
  extension.
- The eventID is the RFC 6920 name of the event's commitment (``ni:///sha-256;<b64url>``),
  and the ``parcelproof:`` extension carries the log, sequence, leaf index and commitment
  that a verifier needs to find the event in a proof bundle.

Error reasons never echo a tracking number or a place (they may reach logs).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from parcelproof.core.commitment import JsonValue, normalize_tracking_number
from parcelproof.core.errors import FormatError
from parcelproof.core.vocabulary import Status

EPCIS_CONTEXT: Final = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
#: The JSON-LD namespace of the ParcelProof extension properties (``parcelproof:…``).
NAMESPACE: Final = "urn:parcelproof:epcis:"
PREFIX: Final = "parcelproof"
SCHEMA_VERSION: Final = "2.0"
MEDIA_TYPE: Final = "application/ld+json"

PARCEL_URN: Final = "urn:parcelproof:parcel:"
PLACE_URN: Final = "urn:parcelproof:place:"
LOG_URN: Final = "urn:parcelproof:log:"
#: CBV 2.0 has no step for a correction of an earlier record: a private bizStep URI.
CORRECTING: Final = "urn:parcelproof:bizstep:correcting"
POSSESSING_PARTY: Final = "possessing_party"

_S = Status
#: Status -> (CBV 2.0 bizStep, CBV 2.0 disposition or None). Every pair is distinct.
CBV: Final[Mapping[Status, tuple[str, str | None]]] = {
    _S.CREATED: ("commissioning", "active"),
    _S.PICKED_UP: ("accepting", "in_transit"),
    _S.DEPARTED: ("departing", "in_transit"),
    _S.ARRIVED: ("arriving", "in_transit"),
    _S.OUT_FOR_DELIVERY: ("transporting", "in_transit"),
    _S.DELIVERED: ("receiving", None),
    _S.DELIVERY_FAILED: ("holding", "in_transit"),
    _S.RETURNED: ("receiving", "returned"),
    _S.EXCEPTION: ("inspecting", "in_progress"),
    _S.HANDOFF_OFFERED: ("shipping", "in_transit"),
    _S.HANDOFF_ACCEPTED: ("receiving", "in_transit"),
    _S.CORRECTED: (CORRECTING, None),
}
_FROM_CBV: Final = {pair: status for status, pair in CBV.items()}

#: Handoff fields the ``parcelproof:handoff`` extension must carry, and may carry.
HANDOFF_FIELDS: Final = (
    "handoff_id", "handoff_time", "counterparty_shipment", "counterparty_agent",
    "counterparty_signature",
)  # fmt: skip
HANDOFF_OPTIONAL: Final = ("handoff_of",)  # an acceptance's reference to the offer
_HANDOFF_PEER: Final = {_S.HANDOFF_OFFERED: "handoff_to", _S.HANDOFF_ACCEPTED: "handoff_from"}
_OTHER_EVENT_TYPES: Final = frozenset(
    {"AggregationEvent", "TransactionEvent", "TransformationEvent", "AssociationEvent"}
)
_URI: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s<>\"{}|\\^`]+$")
_TERM: Final = re.compile(r"^[A-Za-z_]{1,40}$")
_HEX32: Final = re.compile(r"^0x[0-9a-f]{64}$")
_SSCC_URN: Final = re.compile(r"^urn:epc:id:sscc:(\d+)\.(\d+)$")
_SSCC_LINK: Final = re.compile(r"^https?://[^/?#]+(?:/[^?#]*)?/00/(\d{18})(?:[/?#].*)?$")
# EPCIS 2.0 JSON writes CBV terms bare or as GS1 Web URIs; the schema refuses the EPCIS 1.x
# urn:epcglobal:cbv:… forms.
_CBV_BIZSTEP: Final = "https://ref.gs1.org/cbv/BizStep-"
_CBV_DISP: Final = "https://ref.gs1.org/cbv/Disp-"
_SDT: Final = "https://ref.gs1.org/cbv/SDT-"


# --- identifiers ----------------------------------------------------------------------------


def parcel_uri(tracking_number: str) -> str:
    """The parcel's EPC: ``urn:parcelproof:parcel:<normalized tracking number>``."""
    return PARCEL_URN + normalize_tracking_number(tracking_number)


def _sscc_check_digit(digits17: str) -> int:
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(digits17))
    return (10 - total % 10) % 10


def tracking_number_of(epc: str) -> str:
    """The tracking number an EPC names: our private URN, or an SSCC (EPC URN or Digital
    Link, check digit verified) whose 18 digits are taken as the tracking number."""
    if epc.startswith(PARCEL_URN):
        return normalize_tracking_number(epc[len(PARCEL_URN) :])
    if m := _SSCC_URN.match(epc):
        prefix, serial = m.groups()
        if len(prefix) + len(serial) != 17 or not 6 <= len(prefix) <= 12:
            raise FormatError("SSCC EPC URN must hold 17 digits, company prefix of 6 to 12")
        body = serial[0] + prefix + serial[1:]
        return body + str(_sscc_check_digit(body))
    if m := _SSCC_LINK.match(epc):
        sscc = m.group(1)
        if int(sscc[17]) != _sscc_check_digit(sscc[:17]):
            raise FormatError("SSCC in the Digital Link has a wrong check digit")
        return sscc
    raise FormatError(
        "parcel identifier is neither urn:parcelproof:parcel:…, an SSCC EPC URN nor a "
        "GS1 Digital Link with AI 00"
    )


_UNRESERVED: Final = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
)


def _percent_encode(text: str) -> str:
    """RFC 3986 percent-encoding of UTF-8, every byte but the unreserved ones."""
    return "".join(chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in text.encode("utf-8"))


def _percent_decode(text: str) -> str:
    out = bytearray()
    i = 0
    while i < len(text):
        if text[i] == "%":
            pair = text[i + 1 : i + 3]
            if len(pair) != 2 or not all(c in "0123456789abcdefABCDEF" for c in pair):
                raise FormatError("place URN has a bad percent-escape")
            out.append(int(pair, 16))
            i += 3
        else:
            out += text[i].encode("utf-8")
            i += 1
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError("place URN is not percent-encoded UTF-8") from None


def place_uri(place: str) -> str:
    """The readPoint id of a place: the place itself if it is a URI, else our place URN."""
    if _URI.match(place) and not place.startswith(PLACE_URN):
        return place
    return PLACE_URN + _percent_encode(place)


def place_of(uri: str) -> str:
    """Inverse of :func:`place_uri`."""
    if uri.startswith(PLACE_URN):
        return _percent_decode(uri[len(PLACE_URN) :])
    return uri


def log_uri(log_id: str | bytes) -> str:
    """A courier log as a party: ``urn:parcelproof:log:0x<64 hex>``."""
    text = "0x" + log_id.hex() if isinstance(log_id, bytes) else log_id.lower()
    if not _HEX32.match(text):
        raise FormatError("a log id is 32 bytes of hex")
    return LOG_URN + text


def _log_of(uri: str) -> str:
    text = uri[len(LOG_URN) :] if uri.startswith(LOG_URN) else ""
    if not _HEX32.match(text):
        raise FormatError("a handoff party must be urn:parcelproof:log:0x<64 lower-case hex>")
    return text


def event_id(commitment: bytes) -> str:
    """The RFC 6920 name of an event commitment: ``ni:///sha-256;<base64url, no padding>``."""
    if len(commitment) != 32:
        raise FormatError("a commitment is 32 bytes")
    return "ni:///sha-256;" + base64.urlsafe_b64encode(commitment).decode().rstrip("=")


def _short(term: str, prefix: str) -> str:
    return term.removeprefix(prefix)


def status_for(biz_step: str, disposition: str | None) -> Status:
    """The status an EPCIS (bizStep, disposition) pair stands for; CBV terms may be bare or
    ``https://ref.gs1.org/cbv/…`` URIs. FormatError if unmapped."""
    step = _short(biz_step, _CBV_BIZSTEP)
    disp = None if disposition is None else _short(disposition, _CBV_DISP)
    found = _FROM_CBV.get((step, disp))
    if found is None:
        if step not in {s for s, _ in CBV.values()}:
            raise FormatError(f"bizStep {_shown(step)} has no ParcelProof status")
        raise FormatError(
            f"bizStep {_shown(step)} with disposition {_shown(disp)} has no ParcelProof status"
        )
    return found


def _shown(term: str | None) -> str:
    """A vocabulary term for an error message: bare CBV-style words only (a URI might hold
    anything, a tracking number included)."""
    if term is None:
        return "none"
    return repr(term) if _TERM.match(term) else "(a URI)"


# --- export ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportEvent:
    """One recorded event as the export needs it: decrypted fields plus its log position."""

    log_id: bytes
    sequence: int
    event_time: int
    fields: Mapping[str, JsonValue]
    commitment: bytes
    leaf_index: int


def _iso(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _hex_field(fields: Mapping[str, JsonValue], name: str) -> str:
    value = fields.get(name)
    if not isinstance(value, str):
        raise FormatError(f"field {name!r} must be a hex string")
    return value


def _object_event(tracking_number: str, ev: ExportEvent) -> dict[str, Any]:
    status = Status(str(ev.fields.get("status")))
    biz_step, disposition = CBV[status]
    ours = log_uri(ev.log_id)
    out: dict[str, Any] = {
        "type": "ObjectEvent",
        "eventTime": _iso(ev.event_time),
        "eventTimeZoneOffset": "+00:00",
        "eventID": event_id(ev.commitment),
        "epcList": [parcel_uri(tracking_number)],
        "action": "ADD" if status is Status.CREATED else "OBSERVE",
        "bizStep": biz_step,
    }
    if disposition is not None:
        out["disposition"] = disposition
    place = ev.fields.get("place")
    if isinstance(place, str) and place:
        out["readPoint"] = {"id": place_uri(place)}
    if status in _HANDOFF_PEER:
        other = log_uri(_hex_field(ev.fields, _HANDOFF_PEER[status]))
        giver, taker = (ours, other) if status is Status.HANDOFF_OFFERED else (other, ours)
        out["sourceList"] = [{"type": POSSESSING_PARTY, "source": giver}]
        out["destinationList"] = [{"type": POSSESSING_PARTY, "destination": taker}]
        carried = (*HANDOFF_FIELDS, *HANDOFF_OPTIONAL)
        out[f"{PREFIX}:handoff"] = {k: ev.fields[k] for k in carried if k in ev.fields}
    if status is Status.CORRECTED:
        out[f"{PREFIX}:corrects"] = _hex_field(ev.fields, "corrects")
        out[f"{PREFIX}:correctedStatus"] = str(ev.fields.get("corrected_status"))
    out[f"{PREFIX}:log"] = ours
    out[f"{PREFIX}:sequence"] = ev.sequence
    out[f"{PREFIX}:leafIndex"] = ev.leaf_index
    out[f"{PREFIX}:commitment"] = "0x" + ev.commitment.hex()
    return out


def to_document(
    tracking_number: str, events: Sequence[ExportEvent], *, creation_date: int
) -> dict[str, Any]:
    """An EPCISDocument of one ObjectEvent per event, in (event time, log, sequence) order.

    Only the mapped fields leave: status, time, place, handoff and correction fields. Other
    committed fields (addresses, names, notes) stay out of the document.
    """
    ordered = sorted(events, key=lambda e: (e.event_time, e.log_id, e.sequence))
    return {
        "@context": [EPCIS_CONTEXT, {PREFIX: NAMESPACE}],
        "type": "EPCISDocument",
        "schemaVersion": SCHEMA_VERSION,
        "creationDate": _iso(creation_date),
        "epcisBody": {"eventList": [_object_event(tracking_number, e) for e in ordered]},
    }


# --- import ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class EpcisRow:
    """One parcel milestone read from an ObjectEvent: what an agent would sign.

    ``fields`` holds the fields besides ``status`` and ``time`` (``place``, handoff and
    correction fields). An event that lists several parcels gives one row per parcel, all
    with the event's ``index`` in the document's eventList.
    """

    index: int
    tracking_number: str
    status: str
    event_time: int
    fields: dict[str, str | int] = field(default_factory=dict)


@dataclass(frozen=True)
class EpcisRejected:
    """An event of the document that gives no row, and why (no tracking number in it)."""

    index: int
    reason: str


def parse_time(value: object) -> int:
    """Unix seconds of an RFC 3339 date-time with an explicit offset (fractions dropped)."""
    if not isinstance(value, str):
        raise FormatError("eventTime must be a string")
    text = value.strip()
    if text.endswith(("z", "Z")):
        text = text[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise FormatError("eventTime is not an ISO 8601 date-time") from None
    if when.tzinfo is None:
        raise FormatError("eventTime has no UTC offset")
    return int(when.timestamp() // 1)


def _parties(event: Mapping[str, Any], key: str, inner: str) -> list[str]:
    items = event.get(key) or []
    if not isinstance(items, list):
        raise FormatError(f"{key} must be a list")
    return [
        str(i.get(inner))
        for i in items
        if isinstance(i, dict) and _short(str(i.get("type")), _SDT) == POSSESSING_PARTY
    ]


def _handoff_fields(event: Mapping[str, Any], status: Status) -> dict[str, str | int]:
    sources = _parties(event, "sourceList", "source")
    destinations = _parties(event, "destinationList", "destination")
    peers = destinations if status is Status.HANDOFF_OFFERED else sources
    if len(peers) != 1:
        side = "destinationList" if status is Status.HANDOFF_OFFERED else "sourceList"
        raise FormatError(f"a {status.value} names exactly one possessing_party in {side}")
    out: dict[str, str | int] = {_HANDOFF_PEER[status]: _log_of(peers[0])}
    extension = event.get(f"{PREFIX}:handoff")
    if not isinstance(extension, dict) or not set(HANDOFF_FIELDS) <= extension.keys():
        raise FormatError(
            f"a {status.value} needs the counterparty's countersignature in "
            f"{PREFIX}:handoff ({', '.join(HANDOFF_FIELDS)}); record handoffs through the "
            "handoff API otherwise"
        )
    for k in (*HANDOFF_FIELDS, *(k for k in HANDOFF_OPTIONAL if k in extension)):
        value = extension[k]
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise FormatError(f"{PREFIX}:handoff {k} must be a string or an integer")
        out[k] = value
    return out


def _rows(index: int, event: Mapping[str, Any]) -> list[EpcisRow]:
    kind = event.get("type")
    if kind in _OTHER_EVENT_TYPES:
        raise FormatError(f"{kind} is not supported: ParcelProof imports ObjectEvents only")
    if kind != "ObjectEvent":
        raise FormatError("unsupported event type: ParcelProof imports ObjectEvents only")
    action = event.get("action")
    if action not in ("ADD", "OBSERVE"):
        shown = _shown(action) if isinstance(action, str) else "(not a string)"
        raise FormatError(f"action {shown} is not supported (ADD or OBSERVE)")
    if "eventTime" not in event:
        raise FormatError("eventTime is missing")
    when = parse_time(event["eventTime"])
    biz_step = event.get("bizStep")
    if not isinstance(biz_step, str):
        raise FormatError("bizStep is missing: it decides the ParcelProof status")
    disposition = event.get("disposition")
    if disposition is not None and not isinstance(disposition, str):
        raise FormatError("disposition must be a string")
    status = status_for(biz_step, disposition)
    if event.get("quantityList"):
        raise FormatError("quantityList names classes, not parcels: list parcels in epcList")
    epcs = event.get("epcList")
    if not isinstance(epcs, list) or not epcs:
        raise FormatError("epcList names no parcel")
    fields: dict[str, str | int] = {}
    read_point = event.get("readPoint")
    if isinstance(read_point, dict) and isinstance(read_point.get("id"), str):
        fields["place"] = place_of(read_point["id"])
    if status in _HANDOFF_PEER:
        fields.update(_handoff_fields(event, status))
    if status is Status.CORRECTED:
        corrects = event.get(f"{PREFIX}:corrects")
        corrected = event.get(f"{PREFIX}:correctedStatus")
        if not isinstance(corrects, str) or not isinstance(corrected, str):
            raise FormatError(f"a correction needs {PREFIX}:corrects and {PREFIX}:correctedStatus")
        fields.update({"corrects": corrects, "corrected_status": corrected})
    rows = []
    for n, epc in enumerate(epcs):
        if not isinstance(epc, str):
            raise FormatError(f"epcList[{n}] is not a string")
        try:
            tracking = tracking_number_of(epc)
        except FormatError as e:
            raise FormatError(f"epcList[{n}]: {e}") from None
        rows.append(EpcisRow(index, tracking, status.value, when, dict(fields)))
    return rows


def parse_events(document: Mapping[str, Any]) -> list[EpcisRow | EpcisRejected]:
    """The rows and rejections of an EPCISDocument's events, in eventList order.

    The document is expected to have passed schema validation (``service.epcis``); this only
    maps. One bad event never hides the others: it becomes an :class:`EpcisRejected`.
    """
    if document.get("type") != "EPCISDocument":
        raise FormatError("not an EPCISDocument")
    body = document.get("epcisBody")
    events = body.get("eventList") if isinstance(body, dict) else None
    if not isinstance(events, list):
        raise FormatError("epcisBody.eventList is missing")
    out: list[EpcisRow | EpcisRejected] = []
    for index, event in enumerate(events):
        if not isinstance(event, dict):
            out.append(EpcisRejected(index, "event is not a JSON object"))
            continue
        try:
            out.extend(_rows(index, event))
        except FormatError as e:
            out.append(EpcisRejected(index, str(e)))
    return out
