"""EPCIS 2.0: CBV table, export against the vendored GS1 schema, import rows and rejections."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import secrets
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from parcelproof.core import epcis
from parcelproof.core.commitment import JsonValue
from parcelproof.core.epcis import EpcisRejected, EpcisRow, ExportEvent
from parcelproof.core.errors import FormatError
from parcelproof.core.vocabulary import Status
from parcelproof.service.epcis import parse_document, schema, schema_errors

LOG = bytes.fromhex("11" * 32)
PEER = "0x" + "22" * 32
TRACKING = "PP900800700NL"
T0 = 1_780_000_000
SCHEMA_DIR = Path(__file__).resolve().parents[2] / "backend" / "parcelproof" / "epcis_schema"

HANDOFF: dict[str, JsonValue] = {
    "handoff_id": "0x" + "33" * 32,
    "handoff_time": T0 + 5,
    "counterparty_shipment": "0x" + "44" * 32,
    "counterparty_agent": "0x" + "55" * 20,
    "counterparty_signature": "0x" + "66" * 65,
}
#: The fields each status needs besides status, time and place.
EXTRA: dict[Status, dict[str, JsonValue]] = {
    Status.HANDOFF_OFFERED: {"handoff_to": PEER, **HANDOFF},
    Status.HANDOFF_ACCEPTED: {"handoff_from": PEER, "handoff_of": "0x" + "77" * 32, **HANDOFF},
    Status.CORRECTED: {"corrects": "0x" + "88" * 32, "corrected_status": "arrived"},
}


def _event(status: Status, sequence: int = 0, **fields: JsonValue) -> ExportEvent:
    values: dict[str, JsonValue] = {"status": status.value, "time": T0 + sequence}
    values.update(EXTRA.get(status, {}))
    values.update(fields)
    return ExportEvent(LOG, sequence, T0 + sequence, values, secrets.token_bytes(32), sequence)


def _document(*events: ExportEvent) -> dict[str, Any]:
    return epcis.to_document(TRACKING, events, creation_date=T0 + 100)


def _only(result: list[EpcisRow | EpcisRejected]) -> EpcisRow | EpcisRejected:
    assert len(result) == 1, result
    return result[0]


def _rejected(result: list[EpcisRow | EpcisRejected], index: int = 0) -> str:
    found = [r for r in result if r.index == index]
    assert len(found) == 1 and isinstance(found[0], EpcisRejected), result
    return found[0].reason


# --- the vendored schema --------------------------------------------------------------------


def test_vendored_schema_is_the_file_the_readme_names() -> None:
    readme = (SCHEMA_DIR / "README.md").read_text()
    digest = hashlib.sha256((SCHEMA_DIR / epcis_schema_file()).read_bytes()).hexdigest()
    assert digest in readme
    assert schema()["$id"] == "https://gs1.github.io/EPCIS/EPCIS-JSON-Schema.json"


def epcis_schema_file() -> str:
    from parcelproof.service.epcis import SCHEMA_FILE

    return SCHEMA_FILE


def test_schema_is_packaged_and_every_reference_is_local() -> None:
    text = resources.files("parcelproof.epcis_schema").joinpath(epcis_schema_file()).read_text()
    refs = set(re.findall(r'"\$ref":\s*"([^"]*)"', text))
    assert refs and all(r.startswith("#/definitions/") for r in refs)


def test_cbv_terms_in_the_table_are_the_schemas_own_or_private_uris() -> None:
    definitions = schema()["definitions"]
    steps = set(definitions["bizStep"]["anyOf"][1]["enum"])
    dispositions = set(definitions["disposition"]["anyOf"][1]["enum"])
    for status, (step, disposition) in epcis.CBV.items():
        assert step in steps or step.startswith("urn:parcelproof:"), status
        assert disposition is None or disposition in dispositions, status


def test_cbv_table_is_one_to_one_over_every_status() -> None:
    assert set(epcis.CBV) == set(Status)
    assert len(set(epcis.CBV.values())) == len(Status)


# --- export ---------------------------------------------------------------------------------


def test_export_of_a_whole_journey_validates_against_the_gs1_schema() -> None:
    journey = [Status.CREATED, Status.PICKED_UP, Status.DEPARTED, Status.ARRIVED]
    journey += [Status.HANDOFF_OFFERED, Status.OUT_FOR_DELIVERY, Status.DELIVERED]
    doc = _document(*(_event(s, i, place="Depot 7") for i, s in enumerate(journey)))
    assert schema_errors(doc) == ([], {})
    assert doc["@context"][0] == epcis.EPCIS_CONTEXT
    assert (doc["type"], doc["schemaVersion"]) == ("EPCISDocument", "2.0")
    events = doc["epcisBody"]["eventList"]
    assert [e["action"] for e in events] == ["ADD"] + ["OBSERVE"] * 6
    assert [e["parcelproof:sequence"] for e in events] == list(range(7))
    assert events[0]["epcList"] == ["urn:parcelproof:parcel:PP900800700NL"]
    assert events[0]["eventTime"] == "2026-05-28T20:26:40Z"
    offered = events[4]
    assert offered["sourceList"] == [
        {"type": "possessing_party", "source": "urn:parcelproof:log:0x" + "11" * 32}
    ]
    assert offered["destinationList"] == [
        {"type": "possessing_party", "destination": "urn:parcelproof:log:" + PEER}
    ]


def test_event_id_and_extension_name_the_commitment() -> None:
    ev = _event(Status.PICKED_UP)
    out = _document(ev)["epcisBody"]["eventList"][0]
    b64 = out["eventID"].removeprefix("ni:///sha-256;")
    assert out["eventID"].startswith("ni:///sha-256;") and "=" not in b64
    assert bytes.fromhex(out["parcelproof:commitment"][2:]) == ev.commitment
    padded = b64 + "=" * (-len(b64) % 4)
    import base64

    assert base64.urlsafe_b64decode(padded) == ev.commitment
    assert out["parcelproof:leafIndex"] == 0


def test_events_are_exported_in_time_order() -> None:
    late, early = _event(Status.DEPARTED, 5), _event(Status.PICKED_UP, 1)
    events = _document(late, early)["epcisBody"]["eventList"]
    assert [e["bizStep"] for e in events] == ["accepting", "departing"]


def test_unmapped_fields_stay_out_of_the_document() -> None:
    ev = _event(
        Status.DELIVERED,
        destination_address="Breestraat 1, Leiden",
        confirmation_code="123456",
        agent_name="driver 0042",
    )
    text = json.dumps(_document(ev))
    for secret in ("Breestraat", "123456", "driver 0042"):
        assert secret not in text


def test_a_place_that_is_a_uri_is_the_read_point_as_is() -> None:
    sgln = "urn:epc:id:sgln:0614141.00777.0"
    out = _document(_event(Status.ARRIVED, place=sgln))["epcisBody"]["eventList"][0]
    assert out["readPoint"] == {"id": sgln}
    row = _only(parse_document(_document(_event(Status.ARRIVED, place=sgln))))
    assert isinstance(row, EpcisRow) and row.fields["place"] == sgln


# --- round trip -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", list(Status), ids=lambda s: s.value)
def test_every_status_survives_export_then_import(status: Status) -> None:
    ev = _event(status, 3, place="Sorting hub Zwolle-Noord (dock 4) ü")
    doc = _document(ev)
    assert schema_errors(doc) == ([], {})
    row = _only(parse_document(json.loads(json.dumps(doc))))
    assert isinstance(row, EpcisRow), row
    assert (row.index, row.tracking_number, row.status) == (0, TRACKING, status.value)
    assert row.event_time == T0 + 3
    expected: dict[str, str | int] = {"place": "Sorting hub Zwolle-Noord (dock 4) ü"}
    expected.update({k: v for k, v in EXTRA.get(status, {}).items() if isinstance(v, str | int)})
    assert row.fields == expected


def test_cbv_terms_may_come_as_uris() -> None:
    doc = _document(_event(Status.DEPARTED))
    event = doc["epcisBody"]["eventList"][0]
    event["bizStep"] = "https://ref.gs1.org/cbv/BizStep-departing"
    event["disposition"] = "https://ref.gs1.org/cbv/Disp-in_transit"
    row = _only(parse_document(doc))
    assert isinstance(row, EpcisRow) and row.status == "departed"
    event["disposition"] = "urn:epcglobal:cbv:disp:in_transit"  # EPCIS 1.x: the schema says no
    assert "$.epcisBody.eventList[0].disposition" in _rejected(parse_document(doc))


def test_event_time_offsets_are_honoured() -> None:
    assert epcis.parse_time("2026-03-01T12:00:00+02:00") == epcis.parse_time("2026-03-01T10:00:00Z")
    assert epcis.parse_time("2026-03-01T10:00:00.999Z") == epcis.parse_time("2026-03-01T10:00:00Z")
    with pytest.raises(FormatError, match="no UTC offset"):
        epcis.parse_time("2026-03-01T10:00:00")


def test_sscc_identifiers_import_as_their_18_digits() -> None:
    # GS1 EPC Tag Data Standard example: urn:epc:id:sscc:0614141.1234567890 = (00)106141412345678908
    assert epcis.tracking_number_of("urn:epc:id:sscc:0614141.1234567890") == "106141412345678908"
    assert epcis.tracking_number_of("https://id.gs1.org/00/106141412345678908") == (
        "106141412345678908"
    )
    with pytest.raises(FormatError, match="wrong check digit"):
        epcis.tracking_number_of("https://id.gs1.org/00/106141412345678907")
    with pytest.raises(FormatError, match="neither"):
        epcis.tracking_number_of("urn:epc:id:sgtin:0614141.112345.400")


def test_an_event_with_several_parcels_gives_a_row_each() -> None:
    doc = _document(_event(Status.ARRIVED))
    doc["epcisBody"]["eventList"][0]["epcList"].append("urn:parcelproof:parcel:PP2")
    rows = parse_document(doc)
    assert [(r.index, r.tracking_number) for r in rows if isinstance(r, EpcisRow)] == [
        (0, TRACKING),
        (0, "PP2"),
    ]


# --- rejections -----------------------------------------------------------------------------


def _journey() -> dict[str, Any]:
    return _document(*(_event(s, i) for i, s in enumerate([Status.PICKED_UP, Status.DEPARTED])))


def test_schema_violation_rejects_that_event_with_a_json_path_and_keeps_the_others() -> None:
    doc = _journey()
    del doc["epcisBody"]["eventList"][0]["eventTime"]
    result = parse_document(doc)
    reason = _rejected(result, 0)
    assert reason == "schema: $.epcisBody.eventList[0]: 'eventTime' is a required property"
    assert isinstance(result[1], EpcisRow) and result[1].status == "departed"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"eventTime": "2026-03-01T10:00:00"},
            "$.epcisBody.eventList[0].eventTime: is not a valid date-time",
        ),
        (
            {"eventTimeZoneOffset": "+25:00"},
            "$.epcisBody.eventList[0].eventTimeZoneOffset: does not match the pattern",
        ),
        (
            {"epcList": ["urn:parcelproof:parcel:PP 9"]},
            "$.epcisBody.eventList[0].epcList[0]: is not a valid uri",
        ),
        ({"action": "SCAN"}, "$.epcisBody.eventList[0].action: is not one of the allowed values"),
        ({"readPoint": {}}, "$.epcisBody.eventList[0].readPoint: 'id' is a required property"),
        ({"sourceId": "x"}, "property name 'sourceId' is neither an EPCIS term nor a URI"),
    ],
    ids=["time-without-offset", "offset", "epc-not-uri", "action", "read-point", "property"],
)
def test_schema_violations_name_the_path_and_rule(change: dict[str, Any], expected: str) -> None:
    doc = _document(_event(Status.ARRIVED))
    doc["epcisBody"]["eventList"][0].update(change)
    assert expected in _rejected(parse_document(doc))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"type": "AggregationEvent"}, "AggregationEvent is not supported"),
        ({"bizStep": "packing"}, "bizStep 'packing' has no ParcelProof status"),
        ({"disposition": "returned"}, "bizStep 'arriving' with disposition 'returned'"),
        ({"bizStep": None}, "bizStep is missing"),
        ({"action": "DELETE"}, "action 'DELETE' is not supported"),
        ({"epcList": ["urn:epc:id:sgtin:0614141.112345.400"]}, "epcList[0]: parcel identifier"),
        (
            {
                "epcList": [],
                "quantityList": [{"epcClass": "urn:epc:class:lgtin:1.2.3", "quantity": 1}],
            },
            "quantityList names classes, not parcels",
        ),
    ],
    ids=["aggregation", "unknown-step", "unmapped-pair", "no-step", "delete", "sgtin", "quantity"],
)
def test_unsupported_events_are_rejected_with_a_reason(
    change: dict[str, Any], expected: str
) -> None:
    doc = _document(_event(Status.ARRIVED))
    event = doc["epcisBody"]["eventList"][0]
    event.update(change)
    for key in [k for k, v in change.items() if v is None]:
        del event[key]
    assert expected in _rejected(parse_document(doc))


def test_a_handoff_without_its_countersignature_is_rejected() -> None:
    doc = _document(_event(Status.HANDOFF_ACCEPTED))
    del doc["epcisBody"]["eventList"][0]["parcelproof:handoff"]
    assert "needs the counterparty's countersignature" in _rejected(parse_document(doc))


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d.update(schemaVersion=2), "$.schemaVersion: must be of type string"),
        (lambda d: d.pop("@context"), "'@context' is a required property"),
        (lambda d: d.update(creationDate="yesterday"), "$.creationDate: is not a valid date-time"),
        (lambda d: d.update(type="EPCISQueryDocument"), "$"),
    ],
    ids=["version", "context", "creation-date", "query-document"],
)
def test_a_malformed_document_is_refused_whole(mutate: Any, expected: str) -> None:
    doc = _journey()
    mutate(doc)
    with pytest.raises(FormatError, match=r"not a valid EPCIS 2\.0 document") as raised:
        parse_document(doc)
    assert expected in str(raised.value)


def test_not_an_object_is_refused() -> None:
    with pytest.raises(FormatError, match=r"\$: must be of type object"):
        parse_document([])


def test_reasons_never_echo_tracking_numbers_or_places() -> None:
    doc = _document(_event(Status.ARRIVED, place="Secret Lane 9"))
    bad = copy.deepcopy(doc)
    event = bad["epcisBody"]["eventList"][0]
    event["epcList"] = ["urn:parcelproof:parcel:PP 900800700NL"]  # not a URI
    event["readPoint"] = {"id": "Secret Lane 9"}  # not a URI either
    event["bizStep"] = "urn:parcelproof:parcel:PP900800700NL"  # a URI, but not a bizStep
    reason = _rejected(parse_document(bad))
    assert "900800700" not in reason and "Secret" not in reason
    event.update(epcList=doc["epcisBody"]["eventList"][0]["epcList"], readPoint={"id": "x:y"})
    reason = _rejected(parse_document(bad))
    assert "bizStep" in reason and "900800700" not in reason


@pytest.mark.parametrize("place", ["Depot 7", "100% sure/dock #4?", "日本 倉庫", "a:b c"])
def test_free_text_places_round_trip_through_the_place_urn(place: str) -> None:
    uri = epcis.place_uri(place)
    assert uri.startswith(epcis.PLACE_URN) and " " not in uri
    assert epcis.place_of(uri) == place


@pytest.mark.parametrize(
    "bad", ["urn:parcelproof:place:%G1", "urn:parcelproof:place:%FF", "urn:parcelproof:place:%4"]
)
def test_a_broken_place_urn_is_a_format_error(bad: str) -> None:
    with pytest.raises(FormatError, match="place URN"):
        epcis.place_of(bad)
