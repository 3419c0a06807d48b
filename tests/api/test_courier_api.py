"""Courier API through the real app on a real chain: ingest → anchor → lookup → verify."""

from __future__ import annotations

import uuid
from typing import Any

from parcelproof.core.bundle import hex32
from parcelproof.core.commitment import ZERO32, event_commitment
from parcelproof.core.eip712 import Domain
from parcelproof.service import credentials
from parcelproof.service.node import EventContext
from tests.api.conftest import Api

PARCEL, POSTCODE = "PP900800700NL", "1012 AB"


def _context(api: Api, tracking: str = PARCEL) -> EventContext:
    r = api.client.post(
        "/v1/shipments/context", json={"tracking_number": tracking}, headers=api.auth()
    )
    assert r.status_code == 200, r.text
    c = r.json()
    return EventContext(
        domain=Domain(chain_id=c["chain_id"], verifying_contract=c["verifying_contract"]),
        log_id=bytes.fromhex(c["log_id"][2:]),
        shipment=bytes.fromhex(c["shipment"][2:]),
        sequence=c["sequence"],
        previous=bytes.fromhex(c["previous"][2:]),
    )


def _signed(
    api: Api,
    fields: dict[str, Any],
    at: int,
    ctx: EventContext | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    ctx = ctx or _context(api)
    openings, signature = api.driver.sign(ctx, fields, at)
    return {
        "event_id": event_id or uuid.uuid4().hex,
        "tracking_number": PARCEL,
        "event_time": at,
        "agent": api.driver.address,
        "signature": "0x" + signature.hex(),
        "fields": [o.to_json() for o in openings],
    }


def _create(api: Api) -> None:
    r = api.client.post(
        "/v1/shipments",
        headers=api.auth(),
        json={
            "tracking_number": PARCEL,
            "postcode": POSTCODE,
            "details": {"recipient": "Noor Bakker"},
        },
    )
    assert r.status_code == 201, r.text


def _problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    return body


def test_ingest_anchor_lookup_verify(api: Api) -> None:
    _create(api)
    r = api.client.post(
        "/v1/events",
        headers=api.auth(),
        json=_signed(api, {"status": "picked_up", "place": "Amsterdam"}, api.now - 60),
    )
    assert r.status_code == 201, r.text
    assert r.json()["sequence"] == 0 and r.json()["leaf_index"] == 0
    anchored = api.client.post("/v1/anchor", headers=api.auth())
    assert anchored.status_code == 200 and anchored.json()["size"] == 1
    r = api.client.post("/v1/lookup", json={"tracking_number": PARCEL, "postcode": "1012ab"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["verification"]["ok"] is True
    assert body["timeline"][0]["fields"]["status"] == "picked_up"
    assert body["timeline"][0]["anchoring"] == "anchored"
    assert "Noor" not in r.text
    report = api.client.post("/v1/verify", json=body["bundle"])
    assert report.status_code == 200 and report.json()["ok"] is True
    body["bundle"]["logs"][0]["events"][0]["revealed"][0]["value"] = "Rotterdam"
    tampered = api.client.post("/v1/verify", json=body["bundle"]).json()
    assert tampered["ok"] is False
    assert {c["name"] for c in tampered["checks"] if not c["ok"]} == {"commitment"}


def test_replay_is_idempotent_and_reuse_is_409(api: Api) -> None:
    _create(api)
    event = _signed(api, {"status": "picked_up"}, api.now - 60)
    first = api.client.post("/v1/events", headers=api.auth(), json=event)
    again = api.client.post("/v1/events", headers=api.auth(), json=event)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json() == again.json()
    other = _signed(
        api,
        {"status": "picked_up", "place": "x"},
        api.now - 50,
        ctx=_context(api),
        event_id=event["event_id"],
    )
    body = _problem(api.client.post("/v1/events", headers=api.auth(), json=other), 409)
    assert "already used" in body["detail"]
    assert api.node.store.log_size() == 1


def test_bulk_reports_each_item(api: Api) -> None:
    _create(api)
    ctx = _context(api)
    first = _signed(api, {"status": "picked_up"}, api.now - 90, ctx)
    # The agent chains its own events: the second signs over the first's commitment.
    commitment = bytes.fromhex(
        api.client.post("/v1/events", headers=api.auth(), json=first).json()["commitment"][2:]
    )
    ctx2 = EventContext(ctx.domain, ctx.log_id, ctx.shipment, 1, commitment)
    second = _signed(api, {"status": "departed"}, api.now - 80, ctx2)
    forged = _signed(api, {"status": "arrived"}, api.now - 70, ctx2)
    forged["signature"] = second["signature"]
    r = api.client.post(
        "/v1/events/bulk", headers=api.auth(), json={"events": [first, second, forged]}
    )
    assert r.status_code == 200, r.text
    statuses = [item["status"] for item in r.json()["results"]]
    assert statuses[:2] == [200, 201]
    assert statuses[2] == 422


def test_bad_signature_is_422(api: Api) -> None:
    _create(api)
    event = _signed(api, {"status": "picked_up"}, api.now - 60)
    event["signature"] = "0x" + "11" * 65
    body = _problem(api.client.post("/v1/events", headers=api.auth(), json=event), 422)
    assert body["type"].endswith("bad-signature")


def test_key_outside_window_is_422(api: Api) -> None:
    _create(api)
    # Two days back: before the driver key's window (it starts a day back), yet well inside
    # the 72-hour back-dating limit whatever the time the test takes to get here.
    event = _signed(api, {"status": "picked_up"}, api.now - 2 * 86400)
    body = _problem(api.client.post("/v1/events", headers=api.auth(), json=event), 422)
    assert body["type"].endswith("agent-key-not-valid")


def test_illegal_transition_is_422_with_reason(api: Api) -> None:
    _create(api)
    event = _signed(api, {"status": "delivered"}, api.now - 60)
    body = _problem(api.client.post("/v1/events", headers=api.auth(), json=event), 422)
    assert "delivered may not follow nothing" in body["detail"]


def test_gapped_sequence_is_refused(api: Api) -> None:
    _create(api)
    ctx = _context(api)
    gapped = EventContext(ctx.domain, ctx.log_id, ctx.shipment, 3, bytes(range(32)))
    event = _signed(api, {"status": "picked_up"}, api.now - 60, gapped)
    body = _problem(api.client.post("/v1/events", headers=api.auth(), json=event), 422)
    assert body["type"].endswith("bad-signature")  # the node signs over its own sequence


def test_wrong_factor_and_wrong_number_are_identical(api: Api) -> None:
    _create(api)
    wrong_factor = api.client.post(
        "/v1/lookup", json={"tracking_number": PARCEL, "postcode": "9999"}
    )
    wrong_number = api.client.post(
        "/v1/lookup", json={"tracking_number": "PP1NL", "postcode": POSTCODE}
    )
    assert _problem(wrong_factor, 404) == _problem(wrong_number, 404)


def test_authentication_and_scopes(api: Api) -> None:
    r = api.client.post("/v1/shipments", json={"tracking_number": PARCEL, "postcode": "1"})
    assert _problem(r, 401)["type"].endswith("unauthorized")
    bad = api.client.post(
        "/v1/shipments",
        headers=api.auth("ppk_nope_nope"),
        json={"tracking_number": PARCEL, "postcode": "1"},
    )
    _problem(bad, 401)
    reader = credentials.issue(api.node.store, "reader", {"read"})  # type: ignore[arg-type]
    r = api.client.post(
        "/v1/shipments", headers=api.auth(reader), json={"tracking_number": PARCEL, "postcode": "1"}
    )
    assert "lacks the 'shipments:write' scope" in _problem(r, 403)["detail"]


def test_malformed_bodies_are_4xx_problems_never_500(api: Api) -> None:
    h = {**api.auth(), "content-type": "application/json"}
    cases: list[tuple[str, str | bytes, int]] = [
        ("/v1/shipments", "{not json", 422),
        ("/v1/shipments", '{"tracking_number": 5, "postcode": "1"}', 422),
        ("/v1/shipments", '{"tracking_number": "A", "postcode": "1", "extra": 1}', 422),
        ("/v1/shipments", '{"tracking_number": "", "postcode": "1"}', 422),
        ("/v1/shipments", '{"tracking_number": "@@@", "postcode": "1"}', 422),
        ("/v1/events", '{"events": []}', 422),
        ("/v1/events/bulk", '{"events": []}', 422),
        ("/v1/lookup", "[]", 422),
        ("/v1/verify", '{"format": "parcelproof-bundle"}', 422),
        ("/v1/verify", b"\xff\xfe", 422),
        ("/v1/lookup", b"x" * (5 * 1024 * 1024), 413),
    ]
    for path, body, expected in cases:
        r = api.client.post(path, content=body, headers=h)
        _problem(r, expected)
        assert "Traceback" not in r.text


def test_wrong_method_and_unknown_route_are_problems(api: Api) -> None:
    _problem(api.client.get("/v1/events"), 405)
    _problem(api.client.get("/v1/nothing-here"), 404)


def test_health_ready_metrics_and_openapi(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    assert api.client.get("/readyz").status_code == 200
    api.client.get("/healthz")
    metrics = api.client.get("/metrics").text
    assert 'parcelproof_http_requests_total{method="GET",route="/healthz",status="200"}' in metrics
    paths = api.client.get("/openapi.json").json()["paths"]
    assert {"/v1/shipments", "/v1/events", "/v1/events/bulk", "/v1/lookup", "/v1/verify"} <= set(
        paths
    )


def test_context_reports_the_next_sequence(api: Api) -> None:
    _create(api)
    ctx = _context(api)
    assert (ctx.sequence, ctx.previous) == (0, ZERO32)
    assert hex32(ctx.log_id) == hex32(api.node.courier_id)


def test_lookup_by_access_token_and_bundle_download(api: Api) -> None:
    r = api.client.post(
        "/v1/shipments",
        headers=api.auth(),
        json={"tracking_number": PARCEL, "postcode": POSTCODE},
    )
    token = r.json()["access_token"]
    event = _signed(api, {"status": "picked_up", "place": "Utrecht"}, api.now - 60)
    assert api.client.post("/v1/events", headers=api.auth(), json=event).status_code == 201
    pending = api.client.post(
        "/v1/lookup/bundle", json={"tracking_number": PARCEL, "access_token": token}
    )
    assert _problem(pending, 409)["detail"].startswith("no event of this parcel is anchored")
    api.client.post("/v1/anchor", headers=api.auth())
    r = api.client.post("/v1/lookup", json={"tracking_number": PARCEL, "access_token": token})
    assert r.status_code == 200 and r.json()["timeline"][0]["block_number"] is not None
    download = api.client.post(
        "/v1/lookup/bundle", json={"tracking_number": PARCEL, "access_token": token}
    )
    assert download.status_code == 200
    assert "attachment" in download.headers["content-disposition"]
    report = api.client.post(
        "/v1/verify", content=download.content, headers={"content-type": "application/json"}
    )
    assert report.json()["ok"] is True


def test_lookup_needs_exactly_one_second_factor(api: Api) -> None:
    both = api.client.post(
        "/v1/lookup", json={"tracking_number": PARCEL, "postcode": "1", "access_token": "x" * 26}
    )
    assert "exactly one second factor" in str(_problem(both, 422)["errors"])
    _problem(api.client.post("/v1/lookup", json={"tracking_number": PARCEL}), 422)


def test_bulk_of_a_thousand_events_and_no_more(api: Api) -> None:
    _create(api)
    ctx = _context(api)
    statuses = ["departed", "arrived"]
    events, previous = [], ctx.previous
    for i in range(1000):
        step = EventContext(ctx.domain, ctx.log_id, ctx.shipment, i, previous)
        fields = {"status": "picked_up" if i == 0 else statuses[i % 2]}
        openings, signature = api.driver.sign(step, fields, api.now - 2000 + i)
        previous = event_commitment(
            ctx.log_id, ctx.shipment, i, step.previous, [o.digest() for o in openings]
        )
        events.append(
            {
                "event_id": f"bulk-{i:04d}",
                "tracking_number": PARCEL,
                "event_time": api.now - 2000 + i,
                "agent": api.driver.address,
                "signature": "0x" + signature.hex(),
                "fields": [o.to_json() for o in openings],
            }
        )
    too_many = api.client.post(
        "/v1/events/bulk", headers=api.auth(), json={"events": [*events, events[0]]}
    )
    _problem(too_many, 422)
    r = api.client.post("/v1/events/bulk", headers=api.auth(), json={"events": events})
    assert r.status_code == 200, r.text[:500]
    assert [item["status"] for item in r.json()["results"]] == [201] * 1000
    assert api.node.store.log_size() == 1000


def test_dispute_bundle_reveals_more_and_needs_the_read_scope(api: Api) -> None:
    _create(api)
    fields = {
        "status": "picked_up",
        "place": "Leiden",
        "agent_name": "driver 0042",
        "destination_address": "Breestraat 1, Leiden",
    }
    event = _signed(api, fields, api.now - 60)
    assert api.client.post("/v1/events", headers=api.auth(), json=event).status_code == 201
    api.client.post("/v1/anchor", headers=api.auth())
    customer = api.client.post("/v1/lookup", json={"tracking_number": PARCEL, "postcode": POSTCODE})
    assert "Breestraat" not in customer.text and "driver 0042" not in customer.text
    writer = credentials.issue(api.node.store, "writer", {"events:write"})  # type: ignore[arg-type]
    denied = api.client.post(
        "/v1/evidence", headers=api.auth(writer), json={"tracking_number": PARCEL}
    )
    _problem(denied, 403)
    r = api.client.post("/v1/evidence", headers=api.auth(), json={"tracking_number": PARCEL})
    assert r.status_code == 200, r.text
    assert r.json()["verification"]["ok"] is True
    assert r.json()["timeline"][0]["fields"]["destination_address"] == "Breestraat 1, Leiden"
    unknown = api.client.post("/v1/evidence", headers=api.auth(), json={"tracking_number": "PP9X"})
    _problem(unknown, 404)


def test_deeply_nested_json_is_refused_before_parsing(api: Api) -> None:
    bomb = b"[" * 100_000 + b"]" * 100_000
    for path in ("/v1/verify", "/v1/lookup", "/v1/events"):
        r = api.client.post(
            path, content=bomb, headers={**api.auth(), "content-type": "application/json"}
        )
        assert "nested deeper than 64" in _problem(r, 422)["detail"]
    fine = api.client.post("/v1/verify", json={"a": [[["x"]]], "s": "[[[[[[" * 50})
    _problem(fine, 422)  # parsed normally: not a bundle, but no depth refusal
    assert "nested deeper" not in fine.text


def test_lookups_are_rate_limited_per_parcel_and_per_client(api: Api) -> None:
    _create(api)
    wrong = {"tracking_number": PARCEL, "postcode": "0000"}
    statuses = [api.client.post("/v1/lookup", json=wrong).status_code for _ in range(11)]
    assert statuses == [404] * 10 + [429]  # guessing one parcel's postcode stops at 10/min
    limited = api.client.post("/v1/lookup", json={"tracking_number": PARCEL, "postcode": POSTCODE})
    body = _problem(limited, 429)
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert "too many requests" in body["detail"]
    other = [  # other parcels still answer until the client's own budget (60/min) is spent
        api.client.post("/v1/lookup", json={"tracking_number": f"PPX{i}", "postcode": "1"})
        for i in range(60)
    ]
    assert {r.status_code for r in other[:48]} == {404}
    assert other[-1].status_code == 429
