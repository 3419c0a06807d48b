"""EPCIS export through the real app on a real chain: a recorded shipment comes out as a
schema-valid EPCISDocument, in order, tied to the stored commitments; access is the `read` one."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from parcelproof.core import epcis
from parcelproof.core.epcis import EpcisRow
from parcelproof.service import credentials
from parcelproof.service.epcis import parse_document, schema_errors
from parcelproof.service.privacy import REQUEST
from tests.api.conftest import Api

PARCEL, POSTCODE = "PP700600500NL", "1012 AB"


def _create(api: Api) -> str:
    r = api.client.post(
        "/v1/shipments",
        headers=api.auth(),
        json={"tracking_number": PARCEL, "postcode": POSTCODE, "details": {"recipient": "Noor"}},
    )
    assert r.status_code == 201, r.text
    code: str = r.json()["confirmation_code"]
    return code


def _export(api: Api, tracking: str = PARCEL, token: str | None = None) -> Any:
    return api.client.post(
        "/v1/epcis/export", json={"tracking_number": tracking}, headers=api.auth(token)
    )


def _problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    return body


def _journey(api: Api) -> list[str]:
    code = _create(api)
    t = api.now - 3000
    steps: list[dict[str, Any]] = [
        {"status": "picked_up", "place": "Amsterdam"},
        {"status": "departed", "place": "Amsterdam"},
        {"status": "arrived", "place": "urn:epc:id:sgln:0614141.00777.0"},
        {"status": "out_for_delivery"},
        {"status": "delivered", "confirmation_code": code, "place": "Breestraat 1, Leiden"},
    ]
    for i, fields in enumerate(steps):
        api.driver.record(api.node, PARCEL, fields, t + 60 * i)
        if i == 1:
            assert api.client.post("/v1/anchor", headers=api.auth()).status_code == 200
    return [str(s["status"]) for s in steps]


def test_export_of_a_recorded_shipment_is_valid_epcis_in_order(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    statuses = _journey(api)
    with caplog.at_level(logging.DEBUG):
        r = _export(api)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/ld+json")
    assert PARCEL not in caplog.text
    doc = r.json()
    assert schema_errors(doc) == ([], {})
    events = doc["epcisBody"]["eventList"]
    assert [e["bizStep"] for e in events] == [
        "accepting",
        "departing",
        "arriving",
        "transporting",
        "receiving",
    ]
    assert [e["parcelproof:sequence"] for e in events] == [0, 1, 2, 3, 4]
    stored = api.node.store.events(api.node.shipment_id(PARCEL))
    assert [e["eventID"] for e in events] == [epcis.event_id(s.commitment) for s in stored]
    assert [e["parcelproof:leafIndex"] for e in events] == [s.leaf_index for s in stored]
    assert events[2]["readPoint"] == {"id": "urn:epc:id:sgln:0614141.00777.0"}
    assert "readPoint" not in events[3]
    # The confirmation code and the shipment's details never leave in an EPCIS document.
    code_field = "confirmation_code"
    assert code_field not in r.text and "Noor" not in r.text
    rows = parse_document(doc)
    assert all(isinstance(row, EpcisRow) for row in rows)
    assert [(row.tracking_number, row.status) for row in rows if isinstance(row, EpcisRow)] == [
        (PARCEL, s) for s in statuses
    ]
    assert [row.event_time for row in rows if isinstance(row, EpcisRow)] == [
        s.event_time for s in stored
    ]


def test_export_is_an_audited_evidence_read(api: Api) -> None:
    _journey(api)
    assert _export(api).status_code == 200
    last = api.audit.entries()[-1]
    assert (last.action, last.target) == ("evidence.read", api.node.shipment_id(PARCEL))
    assert PARCEL not in last.detail_json
    assert json.loads(last.detail_json) == {"events": 5, "format": "epcis"}


def test_export_needs_a_credential_with_the_read_permission(api: Api) -> None:
    _create(api)
    r = api.client.post("/v1/epcis/export", json={"tracking_number": PARCEL})
    _problem(r, 401)
    writer = credentials.issue(api.node.store, "writer", {"events:write"})  # type: ignore[arg-type]
    body = _problem(_export(api, token=writer), 403)
    assert "read" in body["detail"]
    reader = credentials.issue(api.node.store, "reader", {"read"})  # type: ignore[arg-type]
    assert _export(api, token=reader).status_code == 200


def test_unknown_tracking_number_is_404_without_echoing_it(api: Api) -> None:
    _create(api)
    body = _problem(_export(api, "PP000111222XX"), 404)
    assert "PP000111222XX" not in str(body)


def test_an_erased_shipment_has_nothing_to_export(api: Api) -> None:
    _journey(api)
    api.node.erase(PARCEL, REQUEST)
    _problem(_export(api), 409)


def test_a_shipment_without_events_exports_an_empty_event_list(api: Api) -> None:
    _create(api)
    r = _export(api)
    assert r.status_code == 200, r.text
    assert r.json()["epcisBody"]["eventList"] == []
    assert schema_errors(r.json()) == ([], {})
