"""The customer page in real headless Chromium: lookup, in-browser verification, tampering.

A courier node on anvil records a delivery and anchors it; the app (with the web router) is
served by uvicorn on loopback; tests/browser/drive.mjs drives Debian's Chromium through
playwright-core and reports what the page showed. Screenshots go to a temporary directory, or
to ``$PARCELPROOF_SCREENSHOTS`` (e.g. docs/screenshots) to refresh the committed ones.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from parcelproof.api.app import create_app
from parcelproof.api.deps import NodeServices
from parcelproof.api.web import web_router
from parcelproof.chain import devnet
from parcelproof.chain.devnet import Anvil
from parcelproof.store.db import make_engine, session_factory, sqlite_url, upgrade
from parcelproof.store.sql import SqlStore
from tests.conftest import make_courier

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
PARCEL, POSTCODE = "PP 2025 1129 BE", "1000"
JOURNEY = [
    ("picked_up", "Brussels"),
    ("departed", "Brussels hub"),
    ("arrived", "Antwerp depot"),
    ("out_for_delivery", "Antwerp"),
    ("delivered", "Antwerp, Meir 12"),
]

pytestmark = [pytest.mark.browser, pytest.mark.anvil, pytest.mark.slow]


@dataclass
class Site:
    url: str
    lookup: dict[str, Any]


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


@pytest.fixture
def site(anvil_node: Anvil, tmp_path: Path) -> Iterator[Site]:
    """The real app plus the web router over a courier on anvil, served on a loopback port."""
    engine = make_engine(sqlite_url(tmp_path / "db"))
    upgrade(engine)
    sessions = session_factory(engine)
    c = make_courier(devnet.connect(anvil_node.url), lambda log: SqlStore(sessions, log), "web")
    created = c.node.create_shipment(PARCEL, {"recipient": "Lotte Peeters"}, POSTCODE)
    for i, (status, place) in enumerate(JOURNEY):
        fields: dict[str, Any] = {"status": status, "place": place}
        if status == "delivered":
            fields["confirmation_code"] = created.confirmation_code
        c.driver.record(c.node, PARCEL, fields, c.now - 3600 + 600 * i)
    assert c.node.anchor() is not None
    store = c.node.store
    assert isinstance(store, SqlStore)
    app = create_app(NodeServices(node=c.node, ledger=c.ledger, clients=store))
    app.include_router(web_router(anvil_node.url, c.ledger.chain_id, c.ledger.address))

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        r = httpx.post(
            f"{url}/v1/lookup", json={"tracking_number": PARCEL, "postcode": POSTCODE}, timeout=30
        )
        assert r.status_code == 200, r.text
        yield Site(url, r.json())
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        engine.dispose()


def _files(lookup: dict[str, Any], where: Path) -> dict[str, str]:
    """Bundle files for the drop zone: one value changed, one checkpoint never anchored."""
    tampered = copy.deepcopy(lookup["bundle"])
    delivered = tampered["logs"][0]["events"][-1]
    status = next(f for f in delivered["revealed"] if f["name"] == "status")
    assert status["value"] == "delivered"
    status["value"] = "delivery_failed"
    unknown = copy.deepcopy(lookup["bundle"])
    unknown["logs"][0]["checkpoint"]["size"] += 10
    files = {"tampered": tampered, "unknownCheckpoint": unknown}
    paths = {}
    for name, bundle in files.items():
        path = where / f"{name}.json"
        path.write_text(json.dumps(bundle, indent=2))
        paths[name] = str(path)
    (where / "not-json.json").write_text("this is not a bundle")
    paths["notJson"] = str(where / "not-json.json")
    return paths


def _drive(node: str, args: dict[str, Any]) -> str:
    """Run drive.mjs (it stops itself after 150 s); kill its whole process group at 180 s."""
    proc = subprocess.Popen(
        [node, str(ROOT / "tests" / "browser" / "drive.mjs"), json.dumps(args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"drive.mjs did not finish in 180 s:\n{stderr[-4000:]}")
    assert proc.returncode == 0, f"drive.mjs failed:\n{stdout[-4000:]}\n{stderr[-4000:]}"
    return stdout


def _failed(result: dict[str, Any]) -> set[str]:
    return {c["name"] for c in result["checks"] if not c["ok"]}


def test_lookup_verifies_in_the_browser_and_tampering_is_named(
    site: Site, chromium: Path, tmp_path: Path
) -> None:
    shots = Path(os.environ.get("PARCELPROOF_SCREENSHOTS") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    args = {
        "url": site.url,
        "shots": str(shots.resolve()),
        "tracking": PARCEL,
        "postcode": POSTCODE,
        "chromium": str(chromium),
        "files": _files(site.lookup, tmp_path),
    }
    node = shutil.which("node")
    assert node is not None
    started = time.monotonic()
    stdout = _drive(node, args)
    out = json.loads(stdout.strip().splitlines()[-1])
    elapsed = time.monotonic() - started

    assert out["problems"] == []
    assert out["a11y"] == {"unlabelled": [], "live": "polite"}

    # The lookup: every check passed in the browser, and they are the server's checks exactly.
    lookup = out["lookup"]
    assert lookup["state"] == "verified", lookup["summary"]
    assert all(c["ok"] and c["state"] == "passed" for c in lookup["checks"])
    server = site.lookup["verification"]
    assert server["ok"] is True
    assert [(c["name"], c["subject"]) for c in lookup["checks"]] == [
        (c["name"], c["subject"]) for c in server["checks"]
    ]
    names = {c["name"] for c in lookup["checks"]}
    assert names == {"ledger", "checkpoint", "hash-chain", "commitment", "signature"} | {
        "agent-key",
        "inclusion",
    }
    assert len(lookup["checks"]) == 2 + 5 * len(JOURNEY)
    assert len(lookup["timeline"]) == len(JOURNEY)
    assert "Delivered" in lookup["timeline"][-1] and "anchored in block" in lookup["timeline"][-1]

    # A changed value in a bundle file: the commitment check names it.
    tampered = out["tampered"]
    assert tampered["state"] == "failed"
    assert _failed(tampered) == {"commitment"}
    [bad] = [c for c in tampered["checks"] if not c["ok"]]
    assert bad["subject"].endswith(f"event #{len(JOURNEY) - 1}") and "mismatch" in bad["detail"]
    # The timeline shows what the file claims, and marks the event that does not verify.
    *fine, claimed = tampered["timeline"]
    assert "Delivery failed" in claimed and "does not verify" in claimed
    assert not any("does not verify" in t for t in fine)

    # A checkpoint the ledger never anchored: checkpointRoot reverts on the real chain.
    unknown = out["unknownCheckpoint"]
    assert unknown["state"] == "failed" and "checkpoint" in _failed(unknown)
    [cp] = [c for c in unknown["checks"] if c["name"] == "checkpoint"]
    assert cp["detail"].startswith("ParcelLedgerUnknownCheckpoint(")
    assert out["notJson"]["state"] == "unusable" and out["notJson"]["checks"] == []
    assert out["fileInputFocused"] is True

    # No public RPC URL: said plainly, and the chain checks are shown as skipped, not passed.
    offline = out["offline"]
    assert offline["state"] == "partial", offline["summary"]
    assert "cannot read the chain" in out["offlineNotice"]
    assert {c["name"] for c in offline["checks"] if c["state"] == "skipped"} == {
        "ledger",
        "checkpoint",
        "agent-key",
    }
    assert _failed(offline) == set()

    # Phone width: verified too, nothing wider than the screen.
    assert out["phone"]["state"] == "verified"
    assert out["phone"]["scrollWidth"] <= 390, out["phone"]["overflowing"]
    for name in ("lookup-verified.png", "tampered-bundle.png", "phone-width.png"):
        assert (shots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert elapsed < 120, f"the browser run took {elapsed:.0f} s"
