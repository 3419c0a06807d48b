"""The API writes the audit log: customer lookups and evidence reads of decrypted data, staff
logins and account changes, data-subject requests; entries name ids, never tracking numbers."""

from __future__ import annotations

from parcelproof.service.audit import verify
from tests.api.conftest import Api
from tests.api.test_courier_api import PARCEL, POSTCODE, _create

PASSWORD = "audited staff passphrase"


def _actions(api: Api) -> list[tuple[str, str, str | None]]:
    return [(e.actor, e.action, e.target) for e in api.audit.entries()]


def test_reads_of_decrypted_data_are_recorded_with_ids_only(api: Api) -> None:
    _create(api)
    shipment_id = api.node.shipment_id(PARCEL)
    r = api.client.post("/v1/lookup", json={"tracking_number": PARCEL, "postcode": POSTCODE})
    assert r.status_code == 200, r.text
    r = api.client.post("/v1/evidence", json={"tracking_number": PARCEL}, headers=api.auth())
    assert r.status_code == 200, r.text
    client_id = api.token.split("_")[1]
    assert _actions(api) == [
        ("customer:capability", "personal-data.read", shipment_id),
        (f"client:{client_id}", "evidence.read", shipment_id),
    ]
    stored = "".join(e.detail_json + e.actor + (e.target or "") for e in api.audit.entries())
    assert PARCEL not in stored and POSTCODE not in stored
    assert verify(api.audit.entries(), []).ok


def test_failed_lookups_read_nothing_and_record_nothing(api: Api) -> None:
    _create(api)
    r = api.client.post("/v1/lookup", json={"tracking_number": PARCEL, "postcode": "0000 XX"})
    assert r.status_code == 404
    assert _actions(api) == []


def test_staff_logins_failures_and_account_changes_are_recorded(api: Api) -> None:
    admin = api.staff.create_user("adm.audit", "consortium-admin", PASSWORD)
    api.client.post("/v1/staff/login", json={"username": "adm.audit", "password": "wrong one!!"})
    api.client.post("/v1/staff/login", json={"username": "adm.audit", "password": PASSWORD})
    actions = [(a, act) for a, act, _ in _actions(api)]
    assert actions == [
        ("system", "staff.create"),
        (f"staff:{admin.user_id}", "staff.login-failed"),
        (f"staff:{admin.user_id}", "staff.login"),
    ]
    assert all(PASSWORD not in e.detail_json for e in api.audit.entries())
