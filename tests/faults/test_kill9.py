"""kill -9 of the API and the anchoring worker during a bulk ingest: nothing acknowledged is
lost, nothing is stored twice or half, everything ends up anchored and verifies."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from tests.faults.harness import System, kill9_round

pytestmark = pytest.mark.anvil

#: CI's reduced count (one seed per database); `scripts/faults.py` runs the full one
#: (20 rounds of 10,000 events, docs/reliability.md).
SEEDS = (7,)
EVENTS, SHIPMENTS = 600, 30


def _enough_chaos(kills: Counter[str]) -> bool:
    return (
        sum(kills.values()) >= 3
        and kills["api"] + kills["both"] >= 1
        and kills["worker"] + kills["both"] >= 1
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_kill9_during_bulk_ingest_loses_nothing(
    make_system: Callable[[], System], seed: int
) -> None:
    outcome, stats, kills = kill9_round(
        make_system,
        seed,
        events=EVENTS,
        shipments=SHIPMENTS,
        batch=20,
        every=(0.5, 1.5),
        pace=0.25,  # the ingest spans several kills
        until=_enough_chaos,  # and its last batch waits for them on a slow machine
    )
    assert outcome.lost == 0 and outcome.duplicates == 0
    assert outcome.acknowledged == outcome.sent == EVENTS
    assert outcome.stored == EVENTS and outcome.anchored_size == EVENTS
    assert outcome.parcels_verified == SHIPMENTS and outcome.verified_events == EVENTS
    assert sum(kills.values()) >= 3, f"the chaos killed too little: {kills}"
    assert kills["api"] + kills["both"] >= 1 and kills["worker"] + kills["both"] >= 1, kills
    assert stats.retries >= 1, "no batch was ever cut off: the test proved nothing"
