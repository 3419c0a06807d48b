"""The published bundle vectors: the Python verifier gives exactly the expected outcome."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from parcelproof.core.bundle import LedgerSnapshot, verify_bundle
from parcelproof.core.errors import FormatError

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "bundles"


def _cases() -> list[Any]:
    files = sorted(VECTORS.glob("*.json"))
    assert len(files) >= 10
    return [pytest.param(json.loads(f.read_text()), id=f.stem) for f in files]


@pytest.mark.parametrize("case", _cases())
def test_bundle_vector(case: dict[str, Any]) -> None:
    ledger = LedgerSnapshot.from_json(case["ledger"])
    expect = case["expect"]
    if not expect["usable"]:
        with pytest.raises(FormatError):
            verify_bundle(case["bundle"], ledger)
        return
    report = verify_bundle(case["bundle"], ledger)
    assert report.ok is expect["valid"]
    assert sorted({c.name for c in report.failures}) == expect["failedChecks"]
    assert (not report.skipped) is expect.get("complete", True)


def test_every_kind_of_mutation_is_covered() -> None:
    names = {p.stem for p in VECTORS.glob("*.json")}
    for kind in (
        "changed-value",
        "wrong-salt",
        "dropped-event",
        "swapped-order",
        "bad-signature",
        "expired-key",
        "wrong-root",
        "proof-byte-flipped",
        "proof-trailing-garbage",
        "unknown-key",
        "erased-commitment-changed",
        "erased-with-fields",
    ):
        assert any(n.endswith(kind) for n in names), kind
    assert any(n.startswith("valid-") for n in names)
    assert "valid-erased-sender-log" in names
