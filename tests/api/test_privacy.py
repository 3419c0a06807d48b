"""Nothing personal is stored in clear: demo data goes in through the API, every column and
(on SQLite) every byte of the database files is scanned for it."""

from __future__ import annotations

import uuid
from pathlib import Path

from sqlalchemy import Engine, MetaData, select

from parcelproof.service.node import EventContext
from tests.api.conftest import Api
from tests.api.test_courier_api import _context

PARCEL = "PP31415926GB"
SECRETS = {
    "tracking number": PARCEL,
    "postcode": "SW1A 2AA",
    "postcode (normalised)": "SW1A2AA",
    "recipient": "Olivia Pemberton",
    "address": "10 Downing Street",
    "phone": "+44 20 7946 0958",
    "place": "Westminster depot",
    "note": "leave with neighbour at no. 12",
}


def _ingest(api: Api) -> None:
    r = api.client.post(
        "/v1/shipments",
        headers=api.auth(),
        json={
            "tracking_number": PARCEL,
            "postcode": SECRETS["postcode"],
            "details": {
                "recipient": SECRETS["recipient"],
                "address": SECRETS["address"],
                "phone": SECRETS["phone"],
            },
        },
    )
    assert r.status_code == 201, r.text
    steps = [
        {"status": "picked_up", "place": SECRETS["place"]},
        {"status": "out_for_delivery", "place": SECRETS["place"], "note": SECRETS["note"]},
    ]
    for i, fields in enumerate(steps):
        ctx: EventContext = _context(api, PARCEL)
        openings, signature = api.driver.sign(ctx, fields, api.now - 100 + i)
        r = api.client.post(
            "/v1/events",
            headers=api.auth(),
            json={
                "event_id": uuid.uuid4().hex,
                "tracking_number": PARCEL,
                "event_time": api.now - 100 + i,
                "agent": api.driver.address,
                "signature": "0x" + signature.hex(),
                "fields": [o.to_json() for o in openings],
            },
        )
        assert r.status_code == 201, r.text
    assert api.client.post("/v1/anchor", headers=api.auth()).status_code == 200
    looked_up = api.client.post(
        "/v1/lookup", json={"tracking_number": PARCEL, "postcode": SECRETS["postcode"]}
    )
    assert looked_up.status_code == 200 and looked_up.json()["verification"]["ok"]


def _needles() -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for what, value in SECRETS.items():
        found[what] = value.encode()
        found[what + " (upper)"] = value.upper().encode()
    return found


def test_no_column_and_no_file_byte_holds_personal_data(api: Api, sql_engine: Engine) -> None:
    _ingest(api)
    metadata = MetaData()
    metadata.reflect(sql_engine)
    assert {"shipments", "events", "log_nodes", "checkpoints"} <= set(metadata.tables)
    rows_scanned = 0
    with sql_engine.connect() as connection:
        for table in metadata.sorted_tables:
            for row in connection.execute(select(table)):
                rows_scanned += 1
                for column, value in zip(table.columns, row, strict=True):
                    raw = value if isinstance(value, bytes) else str(value).encode()
                    for what, needle in _needles().items():
                        assert needle not in raw, f"{what} in clear in {table.name}.{column.name}"
    assert rows_scanned >= 10  # shipment, 2 events, 3 log nodes, state, checkpoint, …
    if sql_engine.dialect.name == "sqlite":
        database = Path(str(sql_engine.url.database))
        files = [p for p in database.parent.iterdir() if p.name.startswith(database.name)]
        assert files
        for path in files:
            blob = path.read_bytes()
            for what, needle in _needles().items():
                assert needle not in blob, f"{what} in clear in {path.name}"


def test_the_scan_would_see_clear_text(api: Api, sql_engine: Engine) -> None:
    """The scanner itself works: a value stored in clear is found."""
    _ingest(api)
    metadata = MetaData()
    metadata.reflect(sql_engine)
    clients = metadata.tables["api_clients"]
    with sql_engine.begin() as connection:
        connection.execute(clients.update().values(name=SECRETS["recipient"]))
        values = [str(v) for row in connection.execute(select(clients)) for v in row]
    assert any(SECRETS["recipient"] in v for v in values)
