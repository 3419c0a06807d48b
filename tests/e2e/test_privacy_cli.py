"""`parcelproof privacy export/erase/retention/verify-receipt` as real processes on anvil."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import pytest

from parcelproof.chain.devnet import Anvil
from parcelproof.service.agent import Agent
from parcelproof.service.node import CourierNode
from parcelproof.service.privacy import verify_receipt
from parcelproof.service.wiring import open_node
from parcelproof.settings import load_settings, parse_hex32
from tests.e2e.test_serve import PARCEL, POSTCODE, DevNode, _run, dev_setup

DAY = 86400
OLD = "PPRETAINED01NL"


class _Clock:
    def __init__(self, t: int) -> None:
        self.t = t

    def now(self) -> int:
        return self.t


def _fill(node: DevNode) -> str:
    """A parcel with two anchored events, and one created 100 days ago; its shipment id."""
    settings = load_settings(node.env_file)
    runtime = open_node(settings)
    try:
        n = runtime.node
        n.create_shipment(PARCEL, {"recipient": "Noor Bakker"}, POSTCODE)
        agent = Agent(parse_hex32(node.values["PARCELPROOF_AGENT_KEY"], "agent key"))
        now = int(time.time())
        agent.record(n, PARCEL, {"status": "picked_up", "place": "Amsterdam"}, now)
        agent.record(n, PARCEL, {"status": "departed"}, now)
        n.anchor()
        past = CourierNode(
            courier_id=n.courier_id,
            ledger=n.ledger,
            account=n.account,
            keyring=n.keyring,
            shipment_key=settings.shipment_key_bytes(),
            store=n.store,
            clock=_Clock(now - 100 * DAY),
        )
        past.create_shipment(OLD, {"recipient": "someone"}, POSTCODE)
        return past.shipment_id(OLD)
    finally:
        runtime.close()


@pytest.mark.anvil
def test_privacy_commands(anvil_node: Anvil, tmp_path: Path) -> None:
    node = dev_setup(tmp_path / "node", anvil_node)
    old_id = _fill(node)
    env, cwd, opts = node.env(), node.dir, ["--env-file", str(node.env_file)]

    out = tmp_path / "export.json"
    r = _run(["privacy", "export", PARCEL, "--out", str(out), *opts], env, cwd)
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    document = json.loads(out.read_text())
    assert document["shipment"]["details"] == {"recipient": "Noor Bakker"}
    assert len(document["events"]) == 2
    r = _run(["privacy", "export", PARCEL, "--out", str(out), *opts], env, cwd)
    assert r.returncode == 2 and "pass --force" in r.stderr
    r = _run(["privacy", "export", "PP404NL", "--out", str(tmp_path / "x.json"), *opts], env, cwd)
    assert r.returncode == 2 and "error: no such shipment" in r.stderr

    r = _run(["privacy", "erase", PARCEL, *opts], env, cwd)
    assert r.returncode == 2 and "pass --yes" in r.stderr
    r = _run(["privacy", "erase", PARCEL, "--yes", *opts], env, cwd)
    assert r.returncode == 0, r.stderr
    assert " erased on " in r.stderr
    receipt = json.loads(r.stdout)
    again = _run(["privacy", "erase", PARCEL, "--yes", "--reason", "legal", *opts], env, cwd)
    assert again.returncode == 0 and json.loads(again.stdout) == receipt
    assert "was already erased" in again.stderr

    path = tmp_path / "receipt.json"
    path.write_text(json.dumps(receipt))
    rpc = node.values["PARCELPROOF_RPC_URL"]
    r = _run(["privacy", "verify-receipt", str(path), "--rpc", rpc], env, cwd)
    assert r.returncode == 0 and "VALID (signed by the courier's account)" in r.stdout, r.stderr
    receipt["erasure"]["eventCount"] = 1
    path.write_text(json.dumps(receipt))
    r = _run(["privacy", "verify-receipt", str(path), "--offline"], env, cwd)
    assert r.returncode == 1 and "INVALID erasure receipt" in r.stderr
    path.write_text("{}")
    r = _run(["privacy", "verify-receipt", str(path), "--offline"], env, cwd)
    assert r.returncode == 2

    off = node.env(PARCELPROOF_RETENTION_DAYS="0")
    r = _run(["privacy", "retention", *opts], off, cwd)
    assert r.returncode == 0 and "retention is off" in r.stdout
    r = _run(["privacy", "retention", "--dry-run", *opts], env, cwd)
    assert r.returncode == 0, r.stderr
    assert old_id in r.stdout and "would erase 1 shipments" in r.stdout
    r = _run(["privacy", "retention", *opts], env, cwd)
    assert r.returncode == 0 and "erased 1 shipments" in r.stdout, r.stderr
    r = _run(["privacy", "retention", *opts], env, cwd)
    assert "erased 0 shipments" in r.stdout

    runtime = open_node(load_settings(node.env_file))
    try:
        retained = runtime.node.erasure_receipt(OLD)
        assert retained is not None and retained.erasure.reason == "retention"
        verify_receipt(retained, runtime.ledger)
        actions = [(e.action, e.target) for e in runtime.audit.entries()]
        assert ("privacy.export", document["shipment"]["shipmentId"]) in actions
        assert ("privacy.erase", old_id) in actions
        assert [a for a, _ in actions].count("privacy.erase") == 2
    finally:
        runtime.close()
