"""The customer page in real headless Chromium for a parcel whose details were erased."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from parcelproof.api.app import create_app
from parcelproof.api.deps import NodeServices
from parcelproof.api.web import web_router
from parcelproof.chain import devnet
from parcelproof.chain.devnet import Anvil
from parcelproof.store.db import make_engine, session_factory, sqlite_url, upgrade
from parcelproof.store.sql import SqlStore
from tests.browser.test_browser import CHROMIUM, ROOT
from tests.conftest import make_courier

PARCEL, POSTCODE = "PP 2025 0404 BE", "1000"

pytestmark = [pytest.mark.browser, pytest.mark.anvil, pytest.mark.slow]


@pytest.fixture
def browser() -> Path:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    if not (ROOT / "node_modules" / "playwright-core").is_dir():
        pytest.fail("node_modules/playwright-core is missing: run `make setup-node`")
    return CHROMIUM


@pytest.fixture
def erased_site(anvil_node: Anvil, tmp_path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    engine = make_engine(sqlite_url(tmp_path / "db"))
    upgrade(engine)
    sessions = session_factory(engine)
    c = make_courier(devnet.connect(anvil_node.url), lambda log: SqlStore(sessions, log), "gone")
    c.node.create_shipment(PARCEL, {"recipient": "Lotte Peeters"}, POSTCODE)
    c.driver.record(c.node, PARCEL, {"status": "picked_up", "place": "Brussels"}, c.now - 600)
    c.driver.record(c.node, PARCEL, {"status": "departed", "place": "Brussels hub"}, c.now - 300)
    assert c.node.anchor() is not None
    receipt = c.node.erase(PARCEL, "request").to_json()
    store = c.node.store
    assert isinstance(store, SqlStore)
    app = create_app(NodeServices(node=c.node, ledger=c.ledger, clients=store))
    app.include_router(web_router(anvil_node.url, c.ledger.chain_id, c.ledger.address))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", receipt
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        engine.dispose()


def test_an_erased_parcel_shows_what_is_left(
    erased_site: tuple[str, dict[str, Any]], browser: Path, tmp_path: Path
) -> None:
    url, receipt = erased_site
    shots = Path(os.environ.get("PARCELPROOF_SCREENSHOTS") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    args = {
        "url": url,
        "shots": str(shots.resolve()),
        "tracking": PARCEL,
        "postcode": "9999",  # any factor: it can no longer be checked
        "chromium": str(browser),
    }
    node = shutil.which("node")
    assert node is not None
    done = subprocess.run(
        [node, str(ROOT / "tests" / "browser" / "drive_erased.mjs"), json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=150,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["problems"] == []
    assert "were erased on" in out["message"] and "at the request of" in out["message"]
    assert "✓ The erasure receipt is signed by the courier's account" in out["message"]
    assert out["receiptShown"] and out["receipt"] == receipt
    assert out["state"] == "verified", out["summary"]
    assert "2 erased events can no longer be shown" in out["summary"]
    skipped = [c["name"] for c in out["checks"] if c["state"] == "skipped"]
    assert skipped == ["commitment", "commitment"]
    assert all(c["state"] in ("passed", "skipped") for c in out["checks"])
    assert len(out["timeline"]) == 2 and all("Details erased" in t for t in out["timeline"])
    assert "Brussels" not in json.dumps(out)
