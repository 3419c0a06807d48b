"""The courier console (the staff page's console panels) in real headless Chromium: an operator
logs in with a password and sees the anchoring status, the latest checkpoints and the
shipments (paged, refreshed on their own), but no disputes; a dispute resolver logs in with an
authenticator-app code and also sees the open disputes. The data is synthetic.

tests/browser/drive_console.mjs drives the page and asks this test for a TOTP code and for a
new event on the way. The screenshot ``console.png`` goes to a temporary directory, or to
``$PARCELPROOF_SCREENSHOTS`` (docs/ for the committed docs/console.png).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest

from parcelproof.api.app import create_app
from parcelproof.api.deps import NodeServices
from parcelproof.api.web import WEB_ROOT, web_router
from parcelproof.chain import devnet
from parcelproof.service.disputes import DisputeDesk
from parcelproof.service.node import CourierNode
from parcelproof.service.ports import SystemClock
from parcelproof.service.staff import StaffService, WebAuthnConfig, totp_now
from parcelproof.store.db import make_engine, session_factory, sqlite_url, upgrade
from parcelproof.store.disputes_sql import SqlDisputeStore
from parcelproof.store.sql import SqlStore
from parcelproof.store.staff_sql import SqlStaffStore
from tests.conftest import Courier, make_courier
from tests.support.serving import drive, serving

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
DRIVER = ROOT / "tests" / "browser" / "drive_console.mjs"
PASSWORD = "a long staff passphrase"
USERS = {"operator": "ops.console", "resolver": "res.console"}
ROUTE = ("picked_up", "departed", "arrived", "out_for_delivery", "delivered")
PLACES = ("Rotterdam depot", "Utrecht hub", "Zwolle hub", "Groningen depot", "Doorstep")
SHIPMENTS = 13  # two pages of ten


class StepClock:
    """The node's clock while the synthetic history is written, hours in the past."""

    def __init__(self, now: int) -> None:
        self.t = now

    def now(self) -> int:
        return self.t


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(reason)  # CI installs it: never pass by skipping there
        pytest.skip(reason)
    if not (ROOT / "node_modules" / "playwright-core").is_dir():
        pytest.fail("node_modules/playwright-core is missing: run `make setup-node`")
    return CHROMIUM


@dataclass
class ConsoleSite:
    url: str
    courier: Courier
    ids: list[str]  # shipment ids, oldest first
    parcels: list[str]
    totp: pyotp.TOTP
    dispute: str


def _history(c: Courier) -> tuple[list[str], list[str]]:
    """Thirteen parcels over the last five hours: delivered ones (confirmed on chain), ones
    under way (anchored) and the newest, whose last scans wait for the next anchoring."""
    node = c.node
    clock = StepClock(c.now - 5 * 3600)
    node.clock = clock
    parcels = [f"PPTEST{n:07d}NL" for n in range(1, SHIPMENTS + 1)]
    ids = []
    for i, parcel in enumerate(parcels):
        clock.t += 600
        details = {"recipient": f"Test Recipient {i + 1}", "street": "Voorbeeldstraat 1"}
        ids.append(node.create_shipment(parcel, details, "1234 AB").shipment_id)
    steps = [max(1, len(ROUTE) - i // 3) for i in range(SHIPMENTS)]  # older ones further along
    for step in range(len(ROUTE)):
        clock.t += 900
        for i, parcel in enumerate(parcels[:-3]):
            if step < steps[i]:
                fields = {"status": ROUTE[step], "place": PLACES[step]}
                c.driver.record(node, parcel, fields, clock.t - 30)
        if step == 1:
            first = node.anchor()
            assert first is not None
            node.store.mark_checkpoint(first.size, "confirmed")
        if step == 3:
            second = node.anchor()
            assert second is not None
            node.store.mark_checkpoint(second.size, "confirmed")
    assert node.anchor() is not None
    node.clock = SystemClock()
    for parcel in parcels[-3:]:  # scanned just now: waiting for the worker
        c.driver.record(node, parcel, {"status": "picked_up", "place": "Amsterdam depot"}, c.now)
    return parcels, ids


@pytest.fixture
def console_site(tmp_path: Path) -> Iterator[ConsoleSite]:
    """The real app (API, staff accounts, dispute desk, pages) on http://localhost:<port>."""
    engine = make_engine(sqlite_url(tmp_path / "db"))
    upgrade(engine)
    sessions = session_factory(engine)
    w3 = devnet.connect(None)
    c = make_courier(w3, lambda log: SqlStore(sessions, log), "console-web")
    store = c.node.store
    assert isinstance(store, SqlStore)
    parcels, ids = _history(c)
    (resolver_account,) = devnet.funded_accounts(w3, 1)
    c.ledger.grant_resolver(resolver_account.address, sender=c.admin)
    desk = DisputeDesk(
        c.node, c.ledger, SqlDisputeStore(sessions, store.log_id), resolver=resolver_account
    )
    dispute = desk.open_as_courier(
        "staff:synthetic", parcels[0], [(c.node.courier_id, 0)], "damaged", None
    )

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://localhost:{sock.getsockname()[1]}"
    staff = StaffService(
        SqlStaffStore(sessions, store.log_id),
        c.node.keyring,
        webauthn=WebAuthnConfig(rp_id="localhost", origins=(url,)),
    )
    staff.create_user(USERS["operator"], "courier-operator", PASSWORD)
    staff.create_user(USERS["resolver"], "dispute-resolver", PASSWORD)
    step = staff.login(USERS["resolver"], PASSWORD)
    uri = staff.enrol_totp(step.token).otpauth_uri
    secret = urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query)["secret"][0]
    staff.logout(staff.confirm_totp(step.token, totp_now(secret)).token)
    services = NodeServices(
        node=c.node,
        ledger=c.ledger,
        clients=store,
        staff=staff,
        disputes=desk,
        anchor_interval_seconds=30,
    )
    app = create_app(services)
    app.include_router(web_router(None, c.ledger.chain_id, c.ledger.address))
    try:
        with serving(app, sock):
            assert httpx.get(f"{url.replace('localhost', '127.0.0.1')}/staff").status_code == 200
            yield ConsoleSite(
                url, c, ids, parcels, pyotp.TOTP(secret), "0x" + dispute.dispute_id.hex()
            )
    finally:
        sock.close()
        engine.dispose()


def _drive(node: str, args: dict[str, Any], answer: Callable[[dict[str, Any]], Any]) -> Any:
    """Run drive_console.mjs, answering its questions; kill its process group at 150 s."""
    return drive(node, DRIVER, args, answer, cwd=ROOT, timeout=150)


def test_console_script_keeps_nothing_and_writes_text_only() -> None:
    js = re.sub(r"^\s*//.*$", "", (WEB_ROOT / "console.js").read_text(), flags=re.MULTILINE)
    for forbidden in (
        "localStorage",
        "sessionStorage",
        "document.cookie",
        "indexedDB",
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "eval(",
        "new Function",
        "fetch(",  # every call goes through staff.js's api(), with the in-memory session
        "http://",
        "https://",
    ):
        assert forbidden not in js, forbidden
    assert (
        "import { startConsole, stopConsole } from './console.js';"
        in (WEB_ROOT / "staff.js").read_text()
    )


@pytest.mark.browser
@pytest.mark.slow
def test_console_shows_anchoring_shipments_and_disputes_in_chromium(
    console_site: ConsoleSite, chromium: Path, tmp_path: Path
) -> None:
    shots = Path(os.environ.get("PARCELPROOF_SCREENSHOTS") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    node = shutil.which("node")
    assert node is not None
    site = console_site
    courier_node: CourierNode = site.courier.node
    recorded: list[str] = []

    def answer(question: dict[str, Any]) -> dict[str, str]:
        if question["kind"] == "totp":  # the next step's: enrolment used the current one
            return {"code": site.totp.at(time.time() + 30)}
        assert question["kind"] == "scan"  # a driver scans a parcel while the console is open
        parcel = site.parcels[-1]
        fields = {"status": "departed", "place": "Amsterdam depot"}
        event = site.courier.driver.record(courier_node, parcel, fields, int(time.time()))
        recorded.append(event.event_id)
        return {}

    args = {
        "url": site.url,
        "chromium": str(chromium),
        "shots": str(shots.resolve()),
        "password": PASSWORD,
        "users": USERS,
    }
    out = _drive(node, args, answer)
    assert out["problems"] == []
    store = courier_node.store
    size = store.log_size()
    latest = store.latest_checkpoint()
    assert latest is not None and size == latest.size + 4  # three waiting, and the new scan
    assert recorded

    # The operator: anchoring and shipments, no disputes panel and no dispute call.
    op = out["operator"]
    assert op["status"]["state"] == "ok"
    assert op["status"]["text"] == "Anchoring normally: waiting for the next anchoring cycle."
    assert op["status"]["live"] == "polite"
    facts = op["facts"]
    assert facts["console-log-size"] == f"{size - 1} events"
    assert facts["console-anchored"].startswith(f"{latest.size} anchored, ")
    assert facts["console-waiting"].startswith("3 events, the oldest recorded ")
    assert facts["console-latest"].startswith(f"size {latest.size}, block {latest.block_number}")
    assert facts["console-shipments"] == str(SHIPMENTS)
    assert op["disputesVisible"] is False and op["disputeFactVisible"] is False
    checkpoints = op["checkpoints"]
    assert [r["size"] for r in checkpoints] == [str(c.size) for c in store.newest_checkpoints(5)]
    assert [r["status"] for r in checkpoints] == ["anchored", "confirmed", "confirmed"]
    assert checkpoints[0]["cells"][3].startswith("0x") and "…" in checkpoints[0]["cells"][3]
    assert op["captions"] == [
        "Latest checkpoints, largest first",
        f"Shipments, newest first: 1\N{EN DASH}10 of {SHIPMENTS}",
    ]
    newest = list(reversed(site.ids))
    first_page = op["shipments"]
    assert [r["shipment"] for r in first_page] == newest[:10]
    assert [r["anchoring"] for r in first_page[:3]] == ["pending"] * 3
    assert first_page[0]["cells"][2] == "picked up"
    assert [r["anchoring"] for r in first_page[3:]] == ["confirmed"] * 7
    oldest = op["olderPage"]
    assert [r["shipment"] for r in oldest["rows"]] == newest[10:]
    assert oldest["caption"] == f"Shipments, newest first: 11\N{EN DASH}13 of {SHIPMENTS}"
    assert [r["cells"][2] for r in oldest["rows"]] == ["delivered"] * 3
    assert [r["anchoring"] for r in oldest["rows"]] == ["anchored"] * 3
    assert oldest["nextDisabled"] is True and oldest["previousDisabled"] is False
    # Refreshed on its own: the new scan shows up without a click.
    assert op["refreshed"]["log"] == f"{size} events"
    assert op["refreshed"]["waiting"].startswith("4 events")
    assert op["refreshed"]["newest"] == "departed"
    assert not any("/v1/disputes" in r for r in op["requests"])
    text = op["text"]
    for personal in (*site.parcels, "Test Recipient", "Voorbeeldstraat", "1234 AB", "depot"):
        assert personal not in text, personal

    # The resolver (password and authenticator app): the open dispute too.
    res = out["resolver"]
    assert res["disputesVisible"] is True and res["facts"]["console-open-disputes"] == "1"
    [dispute] = res["disputes"]
    assert dispute["dispute"] == site.dispute and dispute["state"] == "open"
    assert dispute["cells"][1:3] == ["damaged", "open"]
    assert dispute["cells"][4:] == ["staff:synthetic", "unassigned", "1"]
    assert out["afterLogout"] == {"hidden": True, "rows": 0}
    assert out["failures"] == []
    assert (shots / "console.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
