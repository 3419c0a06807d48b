"""kill -9 of the API and the anchoring worker during a bulk ingest: nothing acknowledged is
lost, nothing is stored twice or half, everything ends up anchored and verifies."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.faults.harness import System, kill9_round

pytestmark = pytest.mark.anvil

#: CI's reduced count; `scripts/faults.py` runs the full one (docs/reliability.md).
SEEDS = (7,)


@pytest.mark.parametrize("seed", SEEDS)
def test_kill9_during_bulk_ingest_loses_nothing(
    make_system: Callable[[], System], seed: int
) -> None:
    outcome, stats, kills = kill9_round(
        make_system, seed, events=3000, shipments=12, batch=40, every=(0.4, 1.5)
    )
    assert outcome.lost == 0 and outcome.duplicates == 0
    assert outcome.acknowledged == outcome.sent == 3000
    assert outcome.stored == 3000 and outcome.anchored_size == 3000
    assert outcome.parcels_verified == 12 and outcome.verified_events == 3000
    assert sum(kills.values()) >= 2, f"the chaos killed too little: {kills}"
    print(stats.seconds, kills, stats.retries, stats.unavailable)
    assert stats.retries >= 1, "no batch was ever cut off: the test proved nothing"
