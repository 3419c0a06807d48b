"""Bulk import of milestones from CSV, JSON Lines or EPCIS: read and check the rows, sign each
shipment's events as one chain, and send them in all-or-nothing batches per shipment."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from parcelproof.core.commitment import (
    MAX_NAME_LENGTH,
    JsonValue,
    event_commitment,
    normalize_tracking_number,
)
from parcelproof.core.eip712 import Domain
from parcelproof.core.errors import Error, FormatError
from parcelproof.core.vocabulary import parse_status
from parcelproof.service.agent import Agent
from parcelproof.service.node import EventContext

Format = Literal["csv", "jsonl", "epcis"]
FORMATS: tuple[Format, ...] = ("csv", "jsonl", "epcis")
#: Events of one bulk request (the API's limit); a shipment's rows never span two requests.
BATCH_LIMIT = 1000
#: Columns (CSV) or keys (JSON Lines) that are not event fields.
TRACKING_KEYS = ("tracking_number", "tracking")
TIME_KEYS = ("time", "event_time")
EVENT_ID_KEY = "event_id"
_RESERVED = {*TRACKING_KEYS, *TIME_KEYS, EVENT_ID_KEY, "status", "fields"}
#: Times a batch is signed again when another writer changed its shipments meanwhile.
STALE_RETRIES = 2
STALE_REASON = "another writer kept changing this shipment during the import; import it again"
_MAX_ROW_FIELDS = 62  # the API takes 64 openings per event; status and time are two


@dataclass(frozen=True)
class Row:
    """One milestone read from the input, checked and normalised (not yet signed)."""

    where: str  # "line 12" or "event 3": how the summary points at it
    tracking_number: str  # normalised
    status: str
    event_time: int
    fields: dict[str, JsonValue]  # the other fields, without status and time
    event_id: str


@dataclass(frozen=True)
class Rejection:
    """A row that was not imported, and why (never echoing the row's content)."""

    where: str
    reason: str


def detect_format(name: str) -> Format:
    """The format a file name implies: .csv, .jsonl/.ndjson, or .json (an EPCIS document)."""
    lower = name.lower()
    if lower.endswith(".csv"):
        return "csv"
    if lower.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    if lower.endswith((".json", ".jsonld")):
        return "epcis"
    raise FormatError(f"cannot tell the format of {name!r}: use --format csv, jsonl or epcis")


# --- reading ------------------------------------------------------------------------------


def read_csv(text: Iterable[str]) -> Iterator[Row | Rejection]:
    """Rows of a CSV file with a header: tracking_number, status, time, optionally event_id
    and any other columns, which become fields when not empty."""
    reader = csv.reader(text)
    try:
        header = next(reader)
    except StopIteration:
        raise FormatError("the CSV file is empty (it needs a header row)") from None
    except csv.Error as e:
        raise FormatError(f"line 1: {e}") from None
    names = [h.strip() for h in header]
    _check_header(names)
    ids = _EventIds()
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            yield Rejection(f"line {reader.line_num}", f"not valid CSV: {e}")
            continue
        where = f"line {reader.line_num}"
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(names):
            yield Rejection(where, f"{len(values)} values for {len(names)} columns")
            continue
        record = {n: v.strip() for n, v in zip(names, values, strict=True) if v.strip() != ""}
        yield _row(where, record, ids)


def read_jsonl(text: Iterable[str]) -> Iterator[Row | Rejection]:
    """Rows of a JSON Lines file: one object per line with tracking_number, status, time,
    optionally event_id, and the other fields at the top level or under "fields"."""
    ids = _EventIds()
    for number, line in enumerate(text, start=1):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            yield Rejection(where, f"not valid JSON ({e.msg} at column {e.colno})")
            continue
        except RecursionError:
            yield Rejection(where, "JSON nested too deeply")
            continue
        if not isinstance(obj, dict):
            yield Rejection(where, "not a JSON object")
            continue
        record: dict[str, Any] = {k: v for k, v in obj.items() if k != "fields"}
        extra = obj.get("fields", {})
        if not isinstance(extra, dict):
            yield Rejection(where, '"fields" must be an object')
            continue
        clash = sorted(set(extra) & set(record))
        if clash:
            yield Rejection(where, f"field {clash[0]!r} is given twice")
            continue
        record.update(extra)
        yield _row(where, record, ids)


def read_epcis(document: object) -> Iterator[Row | Rejection]:
    """Rows of an EPCIS 2.0 document's ObjectEvents (see :mod:`parcelproof.core.epcis`),
    after the document is checked against the schema (:mod:`parcelproof.service.epcis`)."""
    from parcelproof.core.epcis import EpcisRejected
    from parcelproof.service import epcis

    ids = _EventIds()
    for item in epcis.parse_document(document):
        if isinstance(item, EpcisRejected):
            yield Rejection(f"event {item.index + 1}", item.reason)
            continue
        record: dict[str, Any] = dict(item.fields)
        record["tracking_number"] = item.tracking_number
        record["status"] = item.status
        record["time"] = item.event_time
        yield _row(f"event {item.index + 1}", record, ids)


def read(fmt: Format, stream: io.TextIOBase | Iterable[str]) -> Iterator[Row | Rejection]:
    """The rows of ``stream`` in format ``fmt``; FormatError when the file as a whole is bad."""
    if fmt == "csv":
        return read_csv(stream)
    if fmt == "jsonl":
        return read_jsonl(stream)
    text = "".join(stream)
    try:
        document = json.loads(text)
    except ValueError as e:
        raise FormatError(f"not a JSON document ({e})") from None
    return read_epcis(document)


def _check_header(names: list[str]) -> None:
    missing = [
        label
        for label, keys in (
            ("tracking_number", TRACKING_KEYS),
            ("status", ("status",)),
            ("time", TIME_KEYS),
        )
        if not any(k in names for k in keys)
    ]
    if missing:
        raise FormatError(f"the CSV header lacks the column(s): {', '.join(missing)}")
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise FormatError(f"the CSV header repeats the column {duplicated[0]!r}")
    if "" in names:
        raise FormatError("the CSV header has an empty column name")


class _EventIds:
    """Event ids derived from the row's content and its occurrence in the file, so importing
    the same file again names the same events (and the node refuses them as duplicates)."""

    def __init__(self) -> None:
        self._seen: dict[bytes, int] = {}

    def derive(self, tracking: str, status: str, at: int, fields: Mapping[str, JsonValue]) -> str:
        content = json.dumps([tracking, status, at, fields], sort_keys=True, default=str).encode()
        key = hashlib.sha256(content).digest()
        occurrence = self._seen.get(key, 0)
        self._seen[key] = occurrence + 1
        digest = hashlib.sha256(b"parcelproof-import\x00" + key + occurrence.to_bytes(4, "big"))
        return "imp-" + digest.hexdigest()[:40]


def _row(where: str, record: Mapping[str, Any], ids: _EventIds) -> Row | Rejection:
    try:
        tracking_raw = next((record[k] for k in TRACKING_KEYS if k in record), None)
        if tracking_raw is None or tracking_raw == "":
            raise FormatError("no tracking number")
        if not isinstance(tracking_raw, str):
            raise FormatError("the tracking number must be a string")
        tracking = normalize_tracking_number(tracking_raw)
        status_raw = record.get("status")
        if not isinstance(status_raw, str) or not status_raw:
            raise FormatError("no status")
        status = parse_status(status_raw).value
        at = parse_time(next((record[k] for k in TIME_KEYS if k in record), None))
        fields: dict[str, JsonValue] = {}
        for name, value in record.items():
            if name in _RESERVED:
                continue
            if not 1 <= len(name) <= MAX_NAME_LENGTH:
                raise FormatError(f"field name must have 1 to {MAX_NAME_LENGTH} characters")
            if value is None:
                continue
            if isinstance(value, float) and not math.isfinite(value):
                raise FormatError(f"field {name!r} is not a finite number")
            fields[name] = value
        if len(fields) > _MAX_ROW_FIELDS:
            raise FormatError(f"{len(fields)} fields, at most {_MAX_ROW_FIELDS} besides status")
        given_id = record.get(EVENT_ID_KEY)
        if given_id is not None:
            if not isinstance(given_id, str) or not _valid_event_id(given_id):
                raise FormatError("event_id must be 8 to 64 letters, digits, '-' or '_'")
            event_id = given_id
        else:
            event_id = ids.derive(tracking, status, at, fields)
    except FormatError as e:
        return Rejection(where, str(e))
    return Row(where, tracking, status, at, fields, event_id)


def _valid_event_id(value: str) -> bool:
    return 8 <= len(value) <= 64 and all(c.isascii() and (c.isalnum() or c in "-_") for c in value)


def parse_time(value: object) -> int:
    """Unix seconds from an integer, a string of digits, or ISO 8601 with an offset."""
    if value is None or value == "":
        raise FormatError("no time")
    if isinstance(value, bool):
        raise FormatError("time must be unix seconds or ISO 8601")
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, str) and value.isdigit():
        seconds = int(value)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise FormatError("time must be unix seconds or ISO 8601") from None
        if parsed.tzinfo is None:
            raise FormatError("an ISO 8601 time needs an offset (Z or ±hh:mm)")
        seconds = int(parsed.timestamp())
    else:
        raise FormatError("time must be unix seconds or ISO 8601")
    if not 0 <= seconds < 2**63:
        raise FormatError("time out of range")
    return seconds


# --- grouping, signing, batching -----------------------------------------------------------


@dataclass
class Group:
    """A shipment's rows of this import, in time order; imported all together or not at all."""

    tracking_number: str
    rows: list[Row]
    events: list[dict[str, Any]] = field(default_factory=list)  # signed, as the API takes them


def group_rows(rows: Iterable[Row]) -> list[Group]:
    """Rows by shipment, in order of first appearance; each shipment's rows in time order
    (stable: rows at the same second keep the file's order)."""
    groups: dict[str, Group] = {}
    for row in rows:
        groups.setdefault(row.tracking_number, Group(row.tracking_number, [])).rows.append(row)
    for g in groups.values():
        g.rows.sort(key=lambda r: r.event_time)
    return list(groups.values())


def sign_group(agent: Agent, context: EventContext, group: Group) -> None:
    """Sign the group's events as one chain from ``context`` (each over the one before)."""
    events: list[dict[str, Any]] = []
    step = context
    for row in group.rows:
        values: dict[str, JsonValue] = {**row.fields, "status": row.status}
        openings, signature = agent.sign(step, values, row.event_time)
        commitment = event_commitment(
            step.log_id, step.shipment, step.sequence, step.previous, [o.digest() for o in openings]
        )
        events.append(
            {
                "event_id": row.event_id,
                "tracking_number": group.tracking_number,
                "event_time": row.event_time,
                "agent": agent.address,
                "signature": "0x" + signature.hex(),
                "fields": [o.to_json() for o in openings],
            }
        )
        step = EventContext(step.domain, step.log_id, step.shipment, step.sequence + 1, commitment)
    group.events = events


def batches(groups: Sequence[Group], limit: int = BATCH_LIMIT) -> Iterator[list[Group]]:
    """Consecutive runs of whole groups of at most ``limit`` events each."""
    current: list[Group] = []
    size = 0
    for g in groups:
        if current and size + len(g.rows) > limit:
            yield current
            current, size = [], 0
        current.append(g)
        size += len(g.rows)
    if current:
        yield current


# --- sending --------------------------------------------------------------------------------


class ImportApi(Protocol):
    """The two node calls an import needs (an HTTP client in the CLI)."""

    def context(self, tracking_number: str) -> EventContext | Problem: ...

    def bulk(self, events: list[dict[str, Any]]) -> list[tuple[int, Problem | None]]: ...


@dataclass(frozen=True)
class Problem:
    """A refusal as the API answered it (problem+json type suffix, and its detail)."""

    kind: str
    detail: str


class ImportInterruptedError(Error):
    """The node stopped answering mid-import; what was sent before is stored, the rest not."""


@dataclass
class Summary:
    """What an import did, row by row where something went wrong."""

    read: int = 0
    accepted: int = 0
    already: int = 0  # imported before (same event ids): re-running a file is safe
    rejected: list[Rejection] = field(default_factory=list)
    not_attempted: int = 0

    @property
    def ok(self) -> bool:
        return not self.rejected and not self.not_attempted


Progress = Callable[[int], None]


def context_from_json(c: Mapping[str, Any]) -> EventContext:
    """The event context as the API's /v1/shipments/context answers it."""
    return EventContext(
        domain=Domain(chain_id=c["chain_id"], verifying_contract=c["verifying_contract"]),
        log_id=bytes.fromhex(c["log_id"][2:]),
        shipment=bytes.fromhex(c["shipment"][2:]),
        sequence=c["sequence"],
        previous=bytes.fromhex(c["previous"][2:]),
    )


def run_import(
    api: ImportApi,
    agent: Agent,
    items: Iterable[Row | Rejection],
    *,
    summary: Summary | None = None,
    on_read: Progress = lambda n: None,
    on_sent: Progress = lambda n: None,
    dry_run: bool = False,
    batch_limit: int = BATCH_LIMIT,
) -> Summary:
    """Import ``items``; each shipment's rows are stored all together or not at all.

    Rows are read and checked first (``on_read`` per row), then each batch of whole shipments
    is signed and sent all-or-nothing; when the node refuses a row, that shipment's rows are
    rejected and the rest of the batch is sent again (``on_sent`` per settled row). With
    ``dry_run`` the rows are checked and the shipments looked up, but nothing is sent.

    Raises :class:`ImportInterruptedError` (with ``summary`` filled so far) when the node
    stops answering; batches sent before are stored whole, and importing the same file
    again skips them.
    """
    result = summary if summary is not None else Summary()
    rows: list[Row] = []
    for item in items:
        result.read += 1
        if isinstance(item, Rejection):
            result.rejected.append(item)
        else:
            rows.append(item)
        on_read(1)
    groups = []
    for g in group_rows(rows):
        if len(g.rows) > batch_limit:
            reason = f"more than {batch_limit:,} rows for one shipment; split the file"
            _reject_group(result, g, reason, on_sent)
        else:
            groups.append(g)
    total = sum(len(g.rows) for g in groups)
    done = 0

    def settle(n: int) -> None:
        nonlocal done
        done += n
        on_sent(n)

    try:
        for batch in batches(groups, batch_limit):
            for attempt in range(STALE_RETRIES + 1):
                ready: list[Group] = []
                for g in batch:
                    ctx = api.context(g.tracking_number)
                    if isinstance(ctx, Problem):
                        _reject_group(result, g, ctx.detail or ctx.kind, settle)
                    else:
                        sign_group(agent, ctx, g)
                        ready.append(g)
                if dry_run:
                    for g in ready:
                        result.accepted += len(g.rows)
                        settle(len(g.rows))
                    break
                batch = _send(api, ready, result, settle)
                if not batch:
                    break
                if attempt == STALE_RETRIES:  # another writer keeps changing these shipments
                    for g in batch:
                        _reject_group(result, g, STALE_REASON, settle)
    except ImportInterruptedError:
        result.not_attempted = total - done
        result.rejected.sort(key=_position)
        raise
    result.rejected.sort(key=_position)
    return result


def _position(rejection: Rejection) -> tuple[str, int]:
    """File order for the summary: "line 12" before "line 40" (then anything else)."""
    kind, _, number = rejection.where.partition(" ")
    return (kind, int(number)) if number.isdigit() else (rejection.where, 0)


def _send(api: ImportApi, groups: list[Group], result: Summary, on_sent: Progress) -> list[Group]:
    """Send ``groups`` all-or-nothing, dropping refused shipments, until the rest is stored.

    Returns the groups to sign again because their contexts went stale: another writer added
    an event to the shipment after its context was read, so the node either refused our
    signature (it covers the old sequence) or aborted the batch without refusing anything.
    """
    stale: list[Group] = []
    while groups:
        events = [e for g in groups for e in g.events]
        answers = api.bulk(events)
        if len(answers) != len(events):
            raise ImportInterruptedError("the node answered a different number of results")
        per_group: list[list[tuple[int, Problem | None]]] = []
        offset = 0
        for g in groups:
            per_group.append(answers[offset : offset + len(g.rows)])
            offset += len(g.rows)
        refused = {
            gi: next(
                (ri, p)
                for ri, (status, p) in enumerate(answers_of)
                if status >= 400 and status != 424 and p is not None
            )
            for gi, answers_of in enumerate(per_group)
            if any(status >= 400 and status != 424 and p is not None for status, p in answers_of)
        }
        if not refused:
            if any(status == 424 for status, _ in answers):
                return stale + groups  # aborted with nothing refused: a concurrent writer
            for g, answers_of in zip(groups, per_group, strict=True):
                result.accepted += sum(1 for status, _ in answers_of if status == 201)
                result.already += sum(1 for status, _ in answers_of if status != 201)
                on_sent(len(g.rows))
            return stale
        remaining = []
        for gi, g in enumerate(groups):
            if gi not in refused:
                remaining.append(g)
                continue
            ri, problem = refused[gi]
            kinds = {p.kind if p is not None else "" for _, p in per_group[gi]}
            if kinds == {"event-id-reused"}:
                result.already += len(g.rows)  # every row's event id is taken: imported before
                on_sent(len(g.rows))
            elif problem.kind == "bad-signature":
                stale.append(g)  # our signature is over an old sequence: sign again
            else:
                _reject_group(result, g, problem.detail or problem.kind, on_sent, culprit=ri)
        groups = remaining
    return stale


def _reject_group(
    result: Summary, group: Group, reason: str, on_sent: Progress, culprit: int | None = None
) -> None:
    for i, row in enumerate(group.rows):
        if culprit is None or i == culprit:
            result.rejected.append(Rejection(row.where, reason))
        else:
            blame = group.rows[culprit].where
            result.rejected.append(
                Rejection(row.where, f"not imported: {blame} of the same shipment was refused")
            )
    on_sent(len(group.rows))
