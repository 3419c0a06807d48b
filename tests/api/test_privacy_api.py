"""The data-subject routes (export, erase) and the erased parcel's lookup, through the real app
on a real chain and database."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from parcelproof.core.bundle import ERASED, verify_bundle
from parcelproof.service.privacy import verify_receipt
from tests.api.conftest import Api
from tests.api.test_courier_api import PARCEL, POSTCODE, _create, _problem, _signed

PASSWORD = "a long staff passphrase"
ROOT = Path(__file__).resolve().parents[2]


def _operator(api: Api) -> dict[str, str]:
    api.staff.create_user("ops.privacy", "courier-operator", PASSWORD)
    return api.auth(api.staff.login("ops.privacy", PASSWORD).token)


def _journey(api: Api) -> None:
    _create(api)
    for i, fields in enumerate(
        ({"status": "picked_up", "place": "Amsterdam"}, {"status": "departed"})
    ):
        event = _signed(api, fields, api.now - 60 + i)
        assert api.client.post("/v1/events", headers=api.auth(), json=event).status_code == 201
    assert api.client.post("/v1/anchor", headers=api.auth()).status_code == 200


def _lookup(api: Api, postcode: str = POSTCODE, path: str = "/v1/lookup") -> Any:
    return api.client.post(path, json={"tracking_number": PARCEL, "postcode": postcode})


def test_export_then_erase_then_what_is_left(api: Api) -> None:
    _journey(api)
    ops = _operator(api)
    r = api.client.post("/v1/privacy/export", headers=ops, json={"tracking_number": PARCEL})
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    document = r.json()
    assert document["shipment"]["details"] == {"recipient": "Noor Bakker"}
    assert document["shipment"]["state"] == "active"
    assert [e["anchoring"]["state"] for e in document["events"]] == ["anchored", "anchored"]
    places = [{f["name"]: f["value"] for f in e["fields"]}.get("place") for e in document["events"]]
    assert places == ["Amsterdam", None]

    r = api.client.post("/v1/privacy/erase", headers=ops, json={"tracking_number": PARCEL})
    assert r.status_code == 201, r.text
    erased = r.json()
    assert erased["reason"] == "request"
    receipt = verify_receipt(erased["receipt"], api.ledger)  # signed by the courier's account
    assert receipt.signer == api.account.address
    assert receipt.erasure.event_count == 2 and receipt.erasure.erased_at == erased["erased_at"]
    again = api.client.post(
        "/v1/privacy/erase", headers=ops, json={"tracking_number": PARCEL, "reason": "legal"}
    )
    assert again.status_code == 200 and again.json() == erased

    for postcode in (POSTCODE, "9999 ZZ"):  # the factor can no longer be checked
        body = _problem(_lookup(api, postcode), 410)
        assert body["type"] == "urn:parcelproof:problem:erased"
        assert "were erased on" in body["detail"]
        assert [e["receipt"] for e in body["erasures"]] == [erased["receipt"]]
        assert [t["fields"] for t in body["timeline"]] == [{}, {}]
        assert body["verification"]["ok"] is True
        assert "Noor" not in json.dumps(body) and "Amsterdam" not in json.dumps(body)
    bundle = body["bundle"]
    assert all(e["erased"] for e in bundle["logs"][0]["events"])
    report = verify_bundle(bundle, api.ledger)
    assert report.ok and [c.detail for c in report.checks if c.skipped] == [ERASED, ERASED]
    checked = api.client.post("/v1/verify", json=bundle).json()
    assert checked["ok"] is True and checked["complete"] is False
    _problem(_lookup(api, path="/v1/lookup/bundle"), 410)

    late = _signed(api, {"status": "arrived"}, api.now - 30, ctx=_context_before(api))
    body = _problem(api.client.post("/v1/events", headers=api.auth(), json=late), 409)
    assert "erased" in body["detail"]
    body = _problem(
        api.client.post(
            "/v1/shipments/context", headers=api.auth(), json={"tracking_number": PARCEL}
        ),
        409,
    )
    r = api.client.post("/v1/privacy/export", headers=ops, json={"tracking_number": PARCEL})
    document = r.json()
    assert document["shipment"]["state"] == "erased"
    assert document["shipment"]["details"] is None
    assert document["erasure"]["receipt"] == erased["receipt"]

    if shutil.which("node") is not None:  # the in-browser verifier agrees check for check
        _assert_js_agrees(bundle)


def _context_before(api: Api) -> Any:
    """An event context as an agent may still hold it from before the erasure."""
    from parcelproof.core.eip712 import Domain
    from parcelproof.service.node import EventContext

    last = api.node.store.last_event(api.node.shipment_id(PARCEL))
    assert last is not None
    bundle = api.node.export(PARCEL)
    return EventContext(
        domain=Domain(api.ledger.chain_id, api.ledger.address),
        log_id=api.node.courier_id,
        shipment=bytes.fromhex(bundle["shipment"]["reference"][2:]),
        sequence=last.sequence + 1,
        previous=last.commitment,
    )


def _assert_js_agrees(bundle: dict[str, Any]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "cases.json"
        path.write_text(json.dumps([{"bundle": bundle, "ledger": None}]))
        out = subprocess.run(
            ["node", str(ROOT / "tests" / "js" / "report.mjs"), str(path)],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    (js,) = json.loads(out.stdout)
    py = verify_bundle(bundle, None)
    assert js["ok"] is py.ok is True
    assert [(c["name"], c["subject"], c["skipped"]) for c in js["checks"]] == [
        (c.name, c.subject, c.skipped) for c in py.checks
    ]


def test_unknown_numbers_are_404(api: Api) -> None:
    ops = _operator(api)
    for path in ("/v1/privacy/export", "/v1/privacy/erase"):
        body = _problem(api.client.post(path, headers=ops, json={"tracking_number": "PP1NL"}), 404)
        assert body["type"] == "urn:parcelproof:problem:not-found"


def test_only_staff_with_the_permission_may(api: Api) -> None:
    _journey(api)
    for path in ("/v1/privacy/export", "/v1/privacy/erase"):
        body = {"tracking_number": PARCEL}
        _problem(api.client.post(path, json=body), 401)
        _problem(api.client.post(path, headers=api.auth(), json=body), 403)  # a machine client
    assert api.node.erasure_receipt(PARCEL) is None


@pytest.mark.parametrize(
    "body",
    [
        {"tracking_number": PARCEL, "reason": "retention"},  # the retention job's own reason
        {"tracking_number": PARCEL, "reason": "Mrs Bakker phoned"},  # never free text
        {"tracking_number": PARCEL, "extra": 1},
    ],
)
def test_erase_refuses_bad_bodies(api: Api, body: dict[str, Any]) -> None:
    _journey(api)
    _problem(api.client.post("/v1/privacy/erase", headers=_operator(api), json=body), 422)
    assert api.node.erasure_receipt(PARCEL) is None


class _Audit:
    def __init__(self) -> None:
        self.entries: list[tuple[str, str, str | None, dict[str, Any] | None]] = []

    def record(
        self,
        actor: str,
        action: str,
        target: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        self.entries.append((actor, action, target, detail))


def test_requests_are_audited_when_the_node_keeps_an_audit_log(api: Api) -> None:
    _journey(api)
    audit = _Audit()
    setattr(api.client.app.state.services, "audit", audit)  # noqa: B010 - as wiring will
    ops = _operator(api)
    body = {"tracking_number": PARCEL}
    assert api.client.post("/v1/privacy/export", headers=ops, json=body).status_code == 200
    assert api.client.post("/v1/privacy/erase", headers=ops, json=body).status_code == 201
    assert api.client.post("/v1/privacy/erase", headers=ops, json=body).status_code == 200
    shipment_id = api.node.shipment_id(PARCEL)
    assert [(a, t, d) for _, a, t, d in audit.entries] == [
        ("privacy.export", shipment_id, {"state": "active", "events": 2}),
        ("privacy.erase", shipment_id, {"reason": "request", "events": 2}),
    ]
    assert all(actor.startswith("staff:") for actor, *_ in audit.entries)
