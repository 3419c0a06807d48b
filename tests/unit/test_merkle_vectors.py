"""Every RFC 6962/9162 vector from transparency-dev/merkle, hostile ones included."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from parcelproof.core import merkle
from parcelproof.core.errors import Error

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "rfc6962"


def _cases(kind: str) -> list[Any]:
    files = sorted((VECTORS / kind).rglob("*.json"))
    assert files, f"no {kind} vectors found under {VECTORS}"
    return [pytest.param(json.loads(f.read_text()), id=str(f.relative_to(VECTORS))) for f in files]


def _b(value: str | None) -> bytes:
    return base64.b64decode(value or "")


@pytest.mark.parametrize("case", _cases("inclusion"))
def test_inclusion_vector(case: dict[str, Any]) -> None:
    proof = [_b(p) for p in case["proof"] or []]

    def check() -> None:
        merkle.verify_inclusion(
            case["leafIdx"], case["treeSize"], _b(case["leafHash"]), proof, _b(case["root"])
        )

    if case["wantErr"]:
        with pytest.raises(Error):
            check()
    else:
        check()


@pytest.mark.parametrize("case", _cases("consistency"))
def test_consistency_vector(case: dict[str, Any]) -> None:
    proof = [_b(p) for p in case["proof"] or []]

    def check() -> None:
        merkle.verify_consistency(
            case["size1"], case["size2"], _b(case["root1"]), _b(case["root2"]), proof
        )

    if case["wantErr"]:
        with pytest.raises(Error):
            check()
    else:
        check()


def test_vectors_carry_their_license() -> None:
    assert "Apache License" in (VECTORS / "LICENSE").read_text()
