"""EPCIS 2.0 use cases: validate against the vendored GS1 schema, parse imports, export events.

Validation uses ``jsonschema`` (Draft 7, as the schema declares) with every ``$ref`` resolved
inside the vendored file: nothing is fetched. ``jsonschema`` checks no ``uri`` or
``date-time`` format without optional packages, so both checkers are defined here.

Schema error reasons carry a JSON path and the rule that failed, never the offending value
(it may be a tracking number or a place).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import datetime
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Final

from parcelproof.core import epcis
from parcelproof.core.epcis import EpcisRejected, EpcisRow, ExportEvent
from parcelproof.core.errors import FormatError
from parcelproof.service.lookup import ALL_FIELDS
from parcelproof.service.node import CourierNode
from parcelproof.service.ports import ShipmentErasedError

if TYPE_CHECKING:  # jsonschema ships no type information
    from jsonschema import Draft7Validator  # type: ignore[import-untyped]
    from jsonschema.exceptions import ValidationError  # type: ignore[import-untyped]

__all__ = ["EpcisRejected", "EpcisRow", "export_shipment", "parse_document", "schema_errors"]

SCHEMA_PACKAGE: Final = "parcelproof.epcis_schema"
SCHEMA_FILE: Final = "EPCISDocument.schema.json"
_URI: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s<>\"{}|\\^`]*$")
_DATE_TIME: Final = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)
_MAX_REASONS = 3


def _is_uri(value: object) -> bool:
    return not isinstance(value, str) or bool(_URI.match(value))


def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _DATE_TIME.match(value):
        return False
    try:
        datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


@cache
def schema() -> dict[str, Any]:
    """The vendored GS1 EPCIS 2.0 JSON schema (see epcis_schema/README.md)."""
    text = resources.files(SCHEMA_PACKAGE).joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@cache
def _validator(definition: str | None) -> Draft7Validator:
    """A validator of the whole schema, or of one of its definitions (same ``definitions``,
    so every ``#/definitions/…`` reference resolves locally)."""
    from jsonschema import Draft7Validator, FormatChecker

    checker = FormatChecker(formats=())
    checker.checks("uri")(_is_uri)
    checker.checks("date-time")(_is_date_time)
    full = schema()
    if definition is None:
        target = full
    else:
        target = {
            "$schema": full["$schema"],
            "$id": full["$id"],
            "$ref": f"#/definitions/{definition}",
            "definitions": full["definitions"],
        }
    Draft7Validator.check_schema(target)
    return Draft7Validator(target, format_checker=checker)


def _path(base: str, parts: Iterable[object]) -> str:
    out = base
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def _describe(error: ValidationError) -> str:
    """What rule failed, without echoing the instance."""
    rule, expected = error.validator, error.validator_value
    if "propertyNames" in error.schema_path:
        name = error.instance if isinstance(error.instance, str) else "?"
        return f"property name {name[:40]!r} is neither an EPCIS term nor a URI"
    if rule in ("required", "additionalProperties"):
        # "'x' is a required property" / "... ('x' was unexpected)": property names only
        return str(error.message)
    if rule == "type":
        return f"must be of type {expected}"
    if rule in ("enum", "const"):
        return "is not one of the allowed values"
    if rule == "format":
        return f"is not a valid {expected}"
    if rule == "pattern":
        return f"does not match the pattern {expected}"
    if rule in ("anyOf", "oneOf") and error.context:
        from jsonschema.exceptions import best_match

        best = best_match(error.context)
        inner = _describe(best)
        where = _path("", best.relative_path)
        return f"matches none of the allowed forms ({where.lstrip('.') or 'here'}: {inner})"
    return f"fails the schema rule {rule!r}"


def _reasons(validator: Draft7Validator, instance: object, base: str) -> list[str]:
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.path)))
    paths = [tuple(e.absolute_path) for e in errors]
    # An anyOf/oneOf that failed because of a deeper error says less than that error.
    kept = [
        e
        for e, path in zip(errors, paths, strict=True)
        if e.validator not in ("anyOf", "oneOf")
        or not any(len(p) > len(path) and p[: len(path)] == path for p in paths)
    ]
    return [f"{_path(base, e.absolute_path)}: {_describe(e)}" for e in kept]


def schema_errors(document: object) -> tuple[list[str], dict[int, list[str]]]:
    """Schema violations of an EPCISDocument: those of the document around its events, and
    those of each event by its index in ``epcisBody.eventList`` (each with a JSON path)."""
    if not isinstance(document, dict):
        return ["$: must be of type object"], {}
    body = document.get("epcisBody")
    events = body.get("eventList") if isinstance(body, dict) else None
    if not isinstance(events, list):
        return _reasons(_validator(None), document, "$"), {}
    envelope = {**document, "epcisBody": {**body, "eventList": []}}  # type: ignore[dict-item]
    per_event: dict[int, list[str]] = {}
    for i, event in enumerate(events):
        kind = event.get("type") if isinstance(event, dict) else None
        definition = "ObjectEvent" if kind == "ObjectEvent" else "EPCIS-Document-Event"
        found = _reasons(_validator(definition), event, f"$.epcisBody.eventList[{i}]")
        if found:
            per_event[i] = found
    return _reasons(_validator(None), envelope, "$"), per_event


def parse_document(document: object) -> list[EpcisRow | EpcisRejected]:
    """Validate an EPCISDocument against the GS1 schema, then map its events to rows.

    Raises FormatError (with JSON paths) when the document itself is malformed; an event
    that breaks the schema or that ParcelProof cannot map becomes an :class:`EpcisRejected`
    with its index and reason, and the other events still give rows. Rows and rejections
    come in eventList order.
    """
    document_errors, event_errors = schema_errors(document)
    if document_errors or not isinstance(document, dict):
        raise FormatError(f"not a valid EPCIS 2.0 document: {_joined(document_errors)}")
    out: list[EpcisRow | EpcisRejected] = []
    rejected_by_schema: set[int] = set()
    for item in epcis.parse_events(document):
        if item.index not in event_errors or _unsupported_type(document, item.index):
            out.append(item)
        elif item.index not in rejected_by_schema:
            out.append(EpcisRejected(item.index, f"schema: {_joined(event_errors[item.index])}"))
            rejected_by_schema.add(item.index)
    return out


def _unsupported_type(document: dict[str, Any], index: int) -> bool:
    """Whether event ``index`` is not an ObjectEvent: "not supported" says more to the
    sender than the schema's complaints about a type ParcelProof does not import anyway."""
    event = document["epcisBody"]["eventList"][index]
    return not isinstance(event, dict) or event.get("type") != "ObjectEvent"


def _joined(reasons: list[str]) -> str:
    more = len(reasons) - _MAX_REASONS
    return "; ".join(reasons[:_MAX_REASONS]) + (f" (and {more} more)" if more > 0 else "")


def export_shipment(node: CourierNode, tracking_number: str, *, now: int) -> dict[str, Any]:
    """The shipment's events on ``node`` as an EPCISDocument (NotFoundError if unknown,
    ShipmentErasedError if its keys were destroyed: nothing is left to map)."""
    view = node.evidence(tracking_number, ALL_FIELDS)
    if view.erasure is not None:
        raise ShipmentErasedError(
            "the details of this parcel were erased: its events have no status left to export"
        )
    records = {r.sequence: r for r in node.store.events(node.shipment_id(tracking_number))}
    events = []
    for entry in view.timeline:
        record = records[entry.sequence]
        events.append(
            ExportEvent(
                log_id=entry.log_id,
                sequence=entry.sequence,
                event_time=entry.event_time,
                fields=entry.fields,
                commitment=record.commitment,
                leaf_index=record.leaf_index,
            )
        )
    return epcis.to_document(tracking_number, events, creation_date=now)
