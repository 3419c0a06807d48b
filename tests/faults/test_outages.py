"""Outages: the chain node stops for a while, the PostgreSQL server restarts. Ingestion goes on
or fails fast with 503 problem+json, the node recovers without a restart, nothing is lost."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from parcelproof.chain.devnet import Anvil
from parcelproof.chain.localnet import LocalDevnet
from tests.faults.harness import (
    BulkClient,
    System,
    chain_outage_round,
    check_no_loss,
    interleave,
    make_parcels,
    wait_until_anchored,
)
from tests.faults.pgserver import PrivatePostgres, free_port

pytestmark = pytest.mark.anvil

#: How long the chain stays down; `scripts/faults.py --chain-outage 60` runs the full minute.
CHAIN_OUTAGE = float(os.environ.get("PARCELPROOF_FAULT_CHAIN_OUTAGE", "15"))
PROBLEM = "application/problem+json"


@pytest.fixture
def devnet(tmp_path: Path) -> Iterator[LocalDevnet]:
    """A persistent anvil of this test's own (state file, fixed port), stopped at the end."""
    net = LocalDevnet(tmp_path / "devnet", port=free_port())
    net.up()
    try:
        yield net
    finally:
        net.down()


@pytest.fixture
def postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL server of this test's own, so restarting it disturbs no other test."""
    try:
        server = PrivatePostgres()
    except RuntimeError as e:
        if os.environ.get("CI"):
            pytest.fail(str(e))
        pytest.skip(str(e))
    server.start()
    try:
        yield server
    finally:
        server.close()


def test_chain_stopped_and_restarted(devnet: LocalDevnet, tmp_path: Path) -> None:
    figures = chain_outage_round(
        devnet, tmp_path / "node", f"sqlite:///{tmp_path / 'node.sqlite'}", outage=CHAIN_OUTAGE
    )
    assert figures["acknowledged_during_outage"] > 0, "ingestion stopped with the chain"
    assert figures["checkpoints"] >= 2  # one before the outage, at least one after


def test_postgres_restart_fails_fast_and_recovers(
    postgres: PrivatePostgres, anvil_node: Anvil, tmp_path: Path
) -> None:
    system = System(tmp_path / "node", anvil_node.url, postgres.url)
    system.start()
    try:
        rng = random.Random(11)
        with httpx.Client(base_url=system.api.url, timeout=30.0) as client:
            parcels = make_parcels(system, client, rng, 6, 480)
        bulk = BulkClient(system, batch=8, pace=0.2)  # 60 batches: 12 s and more
        join = bulk.run_in_thread(interleave(parcels, rng), time.monotonic() + 600)
        bulk.wait_for(80)
        postgres.stop("fast")
        down_at = time.monotonic()
        api = system.api.url
        auth = {"Authorization": f"Bearer {system.token}"}
        probes = [
            httpx.get(f"{api}/readyz", timeout=10),
            httpx.post(
                f"{api}/v1/lookup",
                json={
                    "tracking_number": parcels[0].tracking_number,
                    "postcode": parcels[0].postcode,
                },
                timeout=10,
            ),
            httpx.post(
                f"{api}/v1/events/bulk",
                headers=auth,
                json={"events": parcels[0].events[:2]},
                timeout=10,
            ),
            httpx.post(
                f"{api}/v1/shipments/context",
                headers=auth,
                json={"tracking_number": parcels[1].tracking_number},
                timeout=10,
            ),
        ]
        for r in probes:
            assert r.status_code == 503, (r.request.url, r.status_code, r.text[:300])
            assert r.headers["content-type"].startswith(PROBLEM), r.headers
            assert r.elapsed.total_seconds() < 5, f"{r.request.url} took {r.elapsed}"
            assert "Retry-After" in r.headers or r.request.url.path == "/readyz"
        time.sleep(3)
        up_at = time.monotonic()  # from here on the server may answer again
        postgres.start()
        join()
        wait_until_anchored(system, timeout=120)
        assert system.api.starts == 1 and system.worker.starts == 1, "a process was restarted"
        assert system.api.alive and system.worker.alive
        # Requests sent after the stop and answered before the start began: the server was down
        # for all of their processing (one answered after the start began may well succeed).
        during = [a for a in bulk.answers if down_at <= a[0] and a[0] + a[3] < up_at]
        assert during, "the client sent nothing while the database was down"
        odd = [(round(at - down_at, 3), status, round(s, 3)) for at, status, _, s in during]
        assert {status for _, status, _, _ in during} <= {503}, [o for o in odd if o[1] != 503]
        assert all(kind.startswith(PROBLEM) for _, _, kind, _ in during)
        assert max(seconds for *_, seconds in during) < 5
        assert httpx.get(f"{api}/readyz", timeout=10).status_code == 200
        outcome = check_no_loss(system, parcels, bulk.stats)
        assert outcome.lost == 0 and outcome.acknowledged == outcome.sent == 480
    finally:
        system.stop()
