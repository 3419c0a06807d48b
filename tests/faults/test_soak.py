"""A short soak (scripts/soak.py, ~15 s): the mixed load runs clean and its figures exist."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pytest
from rich.console import Console
from scripts.soak import OPERATIONS, SoakConfig, run_soak

from parcelproof.chain.devnet import Anvil

pytestmark = pytest.mark.anvil


def test_short_soak_mixes_every_operation_without_errors(anvil_node: Anvil, tmp_path: Path) -> None:
    cfg = SoakConfig(
        duration=15.0,
        rate=10.0,
        seed=3,
        sample_interval=1.0,
        verify_sample=3,
        initial_parcels=4,
        workdir=tmp_path,
    )
    out = io.StringIO()
    result = run_soak(cfg, Console(file=out, width=132), rpc_url=anvil_node.url)
    f = result.figures
    print(out.getvalue())

    assert result.errors == 0, f"{f['error_kinds']}: {f['error_examples']}"
    ops = f["operations"]
    for op in OPERATIONS:
        row = ops[op]
        assert row["count"] > 0 and row["ok"] == row["count"], f"{op}: {row}"
        for p in ("p50_ms", "p95_ms", "p99_ms", "max_ms"):
            assert math.isfinite(row[p]) and row[p] > 0, f"{op} {p}: {row}"
        assert row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"] <= row["max_ms"]
    assert ops["all (load)"]["count"] == sum(ops[op]["count"] for op in OPERATIONS)
    # Lookups are paced under the node's 60/min per client: none was refused with a 429.
    assert ops["lookup"]["rate_limited"] == 0
    assert ops["final-lookup"]["ok"] == 3 and f["sample_verified"] == 3

    assert f["events_acknowledged"] > 0 and f["anchored"] == f["events_acknowledged"]
    for name in ("api", "worker"):
        memory = f["memory"][name]
        assert memory["samples"] >= 5 and memory["samples_after_warmup"] >= 3, memory
        assert 0 < memory["start_mib"] <= memory["max_mib"], memory
        assert math.isfinite(memory["slope_mib_per_min"]), memory
    assert f["process_exit_codes"] == {"api": 0, "worker": 0}
