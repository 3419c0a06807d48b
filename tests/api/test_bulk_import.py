"""Bulk import through the real API: all-or-nothing bulk requests, each shipment's rows stored
together or not at all, rejections with reasons, and re-running a file stores nothing twice."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from parcelproof.cli import _HttpImportApi
from parcelproof.core.errors import FormatError
from parcelproof.service import importer
from parcelproof.service.importer import ImportInterruptedError, Rejection, Row, Summary
from tests.api.conftest import Api
from tests.api.test_courier_api import PARCEL, _context, _signed

PARCELS = ("PP100000001NL", "PP100000002NL", "PP100000003NL")


def _create(api: Api, *tracking: str) -> None:
    for t in tracking:
        r = api.client.post(
            "/v1/shipments",
            headers=api.auth(),
            json={"tracking_number": t, "postcode": "1012 AB", "details": {}},
        )
        assert r.status_code == 201, r.text


def _csv(api: Api, rows: list[tuple[str, str, int, str]]) -> list[Row | Rejection]:
    lines = ["tracking_number,status,time,place"]
    lines += [f"{t},{s},{api.now - ago},{p}" for t, s, ago, p in rows]
    return list(importer.read("csv", io.StringIO("\n".join(lines) + "\n", newline="")))


def _run(api: Api, items: list[Row | Rejection], **kw: Any) -> Summary:
    return importer.run_import(_HttpImportApi(_authorized(api)), api.driver, items, **kw)


def _authorized(api: Api) -> Any:
    api.client.headers.update(api.auth())
    return api.client


def _events_of(api: Api, tracking: str) -> int:
    return _context(api, tracking).sequence


def test_atomic_bulk_stores_nothing_when_one_event_is_refused(api: Api) -> None:
    _create(api, PARCEL)
    ok = _signed(api, {"status": "picked_up"}, api.now - 60)
    bad = dict(ok, event_id="another-event-0001", signature="0x" + "11" * 65)
    atomic = api.client.post(
        "/v1/events/bulk", headers=api.auth(), json={"events": [ok, bad], "atomic": True}
    )
    assert atomic.status_code == 200, atomic.text
    first, second = atomic.json()["results"]
    assert (first["status"], second["status"]) == (424, 422)
    assert first["problem"]["type"].endswith("batch-aborted")
    assert "event 1 of this all-or-nothing batch was refused" in first["problem"]["detail"]
    assert api.node.store.log_size() == 0
    # Not atomic (the default): the good one is stored, the bad one refused.
    plain = api.client.post("/v1/events/bulk", headers=api.auth(), json={"events": [ok, bad]})
    assert [i["status"] for i in plain.json()["results"]] == [201, 422]
    assert api.node.store.log_size() == 1


def test_import_signs_each_shipment_as_one_chain_in_time_order(api: Api) -> None:
    _create(api, *PARCELS[:2])
    rows = [
        (PARCELS[0], "departed", 500, "Utrecht"),
        (PARCELS[0], "picked_up", 600, "Leiden"),  # earlier: sorted before "departed"
        (PARCELS[1], "picked_up", 550, "Delft"),
        (PARCELS[0], "arrived", 400, "Amsterdam"),
        (PARCELS[1], "in_transit", 450, "Gouda"),  # an alias of departed
    ]
    summary = _run(api, _csv(api, rows))
    assert (summary.read, summary.accepted, summary.already) == (5, 5, 0)
    assert summary.rejected == [] and summary.ok
    assert (_events_of(api, PARCELS[0]), _events_of(api, PARCELS[1])) == (3, 2)
    assert api.node.store.log_size() == 5


def test_a_refused_row_rejects_its_whole_shipment_and_nothing_else(api: Api) -> None:
    _create(api, *PARCELS)
    rows = [
        (PARCELS[0], "picked_up", 600, "Leiden"),
        (PARCELS[1], "picked_up", 590, "Delft"),
        (PARCELS[1], "departed", 580, "Delft"),
        (PARCELS[1], "returned", 570, "Delft"),  # may not follow departed
        (PARCELS[2], "picked_up", 560, "Gouda"),
        ("PP999999999NL", "picked_up", 550, "Zwolle"),  # no such shipment on this node
    ]
    summary = _run(api, _csv(api, rows))
    assert summary.accepted == 2 and not summary.ok
    reasons = {r.where: r.reason for r in summary.rejected}
    assert set(reasons) == {"line 3", "line 4", "line 5", "line 7"}
    assert "returned may not follow departed" in reasons["line 5"]
    assert reasons["line 3"] == "not imported: line 5 of the same shipment was refused"
    assert reasons["line 4"] == reasons["line 3"]
    assert "no such shipment" in reasons["line 7"]
    # Nothing of the refused shipment is stored; the others are whole.
    assert [_events_of(api, p) for p in PARCELS] == [1, 0, 1]


def test_rows_that_cannot_be_read_are_rejected_with_their_line(api: Api) -> None:
    text = "\n".join(
        [
            "tracking_number,status,time,place",
            f"{PARCELS[0]},teleported,{api.now - 60},x",
            f"{PARCELS[0]},picked_up,,x",
            f"{PARCELS[0]},picked_up,2026-01-01T10:00:00,x",
            f"{PARCELS[0]},picked_up,{api.now - 60}",
            f"PP-ÅÄÖ,picked_up,{api.now - 60},x",
            "",
        ]
    )
    items = list(importer.read("csv", io.StringIO(text, newline="")))
    got = {r.where: r.reason for r in items if isinstance(r, Rejection)}
    assert got == {
        "line 2": "unknown status 'teleported'",
        "line 3": "no time",
        "line 4": "an ISO 8601 time needs an offset (Z or ±hh:mm)",
        "line 5": "3 values for 4 columns",
        "line 6": "tracking number may hold only letters A-Z, digits, spaces and hyphens",
    }
    summary = _run(api, items)
    assert (summary.read, summary.accepted, len(summary.rejected)) == (5, 0, 5)
    assert api.node.store.log_size() == 0


def test_a_csv_without_the_needed_columns_is_refused_as_a_whole() -> None:
    with pytest.raises(FormatError, match="lacks the column"):
        list(importer.read("csv", io.StringIO("tracking_number,status\nA,picked_up\n")))
    with pytest.raises(FormatError, match="repeats the column 'status'"):
        list(importer.read("csv", io.StringIO("tracking_number,status,time,status\n")))
    with pytest.raises(FormatError, match="empty"):
        list(importer.read("csv", io.StringIO("")))


def test_json_lines_with_nested_fields_and_iso_times(api: Api) -> None:
    _create(api, PARCELS[0])
    lines = [
        json.dumps(
            {
                "tracking_number": PARCELS[0],
                "status": "picked_up",
                "time": api.now - 120,
                "fields": {"place": "Leiden", "scan": {"depot": 7}},
            }
        ),
        "{not json",
        json.dumps(["a list"]),
        json.dumps({"tracking_number": PARCELS[0], "status": "departed", "time": "x"}),
        json.dumps(
            {
                "tracking_number": PARCELS[0],
                "status": "departed",
                "place": 1,
                "fields": {"place": 2},
            }
        ),
    ]
    items = list(importer.read("jsonl", io.StringIO("\n".join(lines))))
    got = {r.where: r.reason for r in items if isinstance(r, Rejection)}
    assert got["line 2"].startswith("not valid JSON")
    assert got["line 3"] == "not a JSON object"
    assert got["line 4"] == "time must be unix seconds or ISO 8601"
    assert got["line 5"] == "field 'place' is given twice"
    summary = _run(api, items)
    assert summary.accepted == 1 and _events_of(api, PARCELS[0]) == 1


def test_importing_the_same_file_again_stores_nothing_twice(api: Api) -> None:
    _create(api, *PARCELS[:2])
    rows = [
        (PARCELS[0], "picked_up", 600, "Leiden"),
        (PARCELS[1], "picked_up", 590, "Delft"),
        (PARCELS[1], "departed", 580, "Delft"),
    ]
    assert _run(api, _csv(api, rows)).accepted == 3
    again = _run(api, _csv(api, rows))
    assert (again.accepted, again.already, again.rejected) == (0, 3, [])
    assert api.node.store.log_size() == 3


class _Flaky:
    """The real API, except that the node stops answering after ``answers`` bulk requests."""

    def __init__(self, api: Api, answers: int) -> None:
        self._real = _HttpImportApi(_authorized(api))
        self._left = answers

    def context(self, tracking_number: str) -> Any:
        return self._real.context(tracking_number)

    def bulk(self, events: list[dict[str, Any]]) -> list[tuple[int, Any]]:
        if self._left == 0:
            raise ImportInterruptedError("the node answered 503 (database-unavailable)")
        self._left -= 1
        return self._real.bulk(events)


def test_an_interrupted_import_keeps_whole_shipments_and_resumes(api: Api) -> None:
    _create(api, *PARCELS)
    rows = [
        (PARCELS[0], "picked_up", 600, "a"),
        (PARCELS[0], "departed", 590, "a"),
        (PARCELS[1], "picked_up", 580, "b"),
        (PARCELS[1], "departed", 570, "b"),
        (PARCELS[2], "picked_up", 560, "c"),
    ]
    summary = Summary()
    with pytest.raises(ImportInterruptedError):
        importer.run_import(
            _Flaky(api, 1), api.driver, _csv(api, rows), summary=summary, batch_limit=3
        )
    # The first batch (whole shipments only: 2 rows, the next shipment would overflow 3) is in.
    assert (summary.accepted, summary.not_attempted) == (2, 3)
    assert [_events_of(api, p) for p in PARCELS] == [2, 0, 0]
    resumed = _run(api, _csv(api, rows), batch_limit=3)
    assert (resumed.accepted, resumed.already, resumed.rejected) == (3, 2, [])
    assert [_events_of(api, p) for p in PARCELS] == [2, 2, 1]


def test_a_dry_run_checks_and_sends_nothing(api: Api) -> None:
    _create(api, PARCELS[0])
    rows = [(PARCELS[0], "picked_up", 600, "a"), (PARCELS[1], "picked_up", 590, "b")]
    summary = _run(api, _csv(api, rows), dry_run=True)
    assert summary.accepted == 1
    assert [r.where for r in summary.rejected] == ["line 3"]
    assert api.node.store.log_size() == 0


def test_more_rows_for_one_shipment_than_a_batch_are_refused(api: Api) -> None:
    _create(api, PARCELS[0])
    rows = [(PARCELS[0], "picked_up", 600, "a"), (PARCELS[0], "departed", 590, "a")]
    summary = _run(api, _csv(api, rows), batch_limit=1)
    assert [r.reason for r in summary.rejected] == [
        "more than 1 rows for one shipment; split the file"
    ] * 2
    assert api.node.store.log_size() == 0


class _Interloper:
    """The real API, with another writer recording an event on the first shipment just before
    each of the first ``times`` bulk requests that carry it (so the import's context is stale)."""

    def __init__(self, api: Api, times: int) -> None:
        self._api = api
        self._real = _HttpImportApi(_authorized(api))
        self._left = times
        self._at = api.now - 1000

    def context(self, tracking_number: str) -> Any:
        return self._real.context(tracking_number)

    def bulk(self, events: list[dict[str, Any]]) -> list[tuple[int, Any]]:
        if self._left and any(e["tracking_number"] == PARCELS[0] for e in events):
            self._left -= 1
            self._at += 1
            status = "picked_up" if _events_of(self._api, PARCELS[0]) == 0 else "exception"
            self._api.driver.record(self._api.node, PARCELS[0], {"status": status}, self._at)
        return self._real.bulk(events)


def test_a_shipment_changed_by_another_writer_meanwhile_is_signed_again(api: Api) -> None:
    _create(api, *PARCELS[:2])
    rows = [(PARCELS[0], "departed", 600, "a"), (PARCELS[1], "picked_up", 590, "b")]
    summary = importer.run_import(_Interloper(api, 1), api.driver, _csv(api, rows))
    assert (summary.accepted, summary.rejected) == (2, [])
    assert [_events_of(api, p) for p in PARCELS[:2]] == [2, 1]  # the interloper's, then ours


def test_a_shipment_that_keeps_changing_is_rejected_and_the_rest_stored(api: Api) -> None:
    _create(api, *PARCELS[:2])
    rows = [(PARCELS[0], "departed", 600, "a"), (PARCELS[1], "picked_up", 590, "b")]
    runs = importer.STALE_RETRIES + 1
    summary = importer.run_import(_Interloper(api, runs), api.driver, _csv(api, rows))
    assert summary.accepted == 1
    assert summary.rejected == [Rejection("line 2", importer.STALE_REASON)]
    assert [_events_of(api, p) for p in PARCELS[:2]] == [runs, 1]


def test_an_epcis_document_imports_as_rows_and_round_trips(api: Api) -> None:
    from parcelproof.service import epcis

    _create(api, *PARCELS[:2])
    rows = [
        (PARCELS[0], "picked_up", 600, "Leiden"),
        (PARCELS[0], "departed", 500, "Leiden"),
        (PARCELS[0], "arrived", 400, "Utrecht"),
    ]
    assert _run(api, _csv(api, rows)).accepted == 3
    document = epcis.export_shipment(api.node, PARCELS[0], now=api.now)
    # The same events, re-addressed to the second parcel, imported from the EPCIS document.
    text = json.dumps(document).replace(PARCELS[0], PARCELS[1])
    items = list(importer.read("epcis", io.StringIO(text)))
    assert [r.status for r in items if isinstance(r, Row)] == ["picked_up", "departed", "arrived"]
    assert [r.fields.get("place") for r in items if isinstance(r, Row)] == [
        "Leiden",
        "Leiden",
        "Utrecht",
    ]
    summary = _run(api, items)
    assert (summary.accepted, summary.rejected) == (3, [])
    assert _events_of(api, PARCELS[1]) == 3
    # An event the schema refuses is rejected by its position; the others still import.
    broken = json.loads(text)
    broken["epcisBody"]["eventList"][1]["action"] = "TELEPORT"
    got = list(importer.read("epcis", io.StringIO(json.dumps(broken))))
    rejected = [r for r in got if isinstance(r, Rejection)]
    assert [r.where for r in rejected] == ["event 2"] and "action" in rejected[0].reason
    with pytest.raises(FormatError, match="not a JSON document"):
        list(importer.read("epcis", io.StringIO("{nope")))
