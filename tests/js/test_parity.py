"""The JS verifier (web/verifier.js) agrees with the Python reference check for check."""

from __future__ import annotations

import copy
import json
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import rfc8785

from parcelproof.core.bundle import LedgerSnapshot, verify_bundle
from parcelproof.core.errors import FormatError

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "tests" / "vectors" / "bundles"
VALID = VECTORS / "valid-handoff-delivery.json"
MUTATIONS = 400
SEED = 20251129

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


def _python(bundle: Any, ledger: dict[str, Any] | None) -> dict[str, Any]:
    view = None if ledger is None else LedgerSnapshot.from_json(ledger)
    try:
        report = verify_bundle(bundle, view)
    except FormatError as e:
        return {"usable": False, "error": str(e)}
    checks = [
        {"name": c.name, "subject": c.subject, "ok": c.ok, "skipped": c.skipped}
        for c in report.checks
    ]
    return {"usable": True, "ok": report.ok, "checks": checks}


def _node(tmp_path: Path, payload: Any, *args: str) -> Any:
    path = tmp_path / "input.json"
    path.write_text(json.dumps(payload))
    out = subprocess.run(
        ["node", str(ROOT / "tests" / "js" / "report.mjs"), *args, str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(out.stdout)


def _javascript(cases: list[dict[str, Any]], tmp_path: Path) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = _node(tmp_path, cases)
    return results


def _json_value(rng: random.Random, depth: int = 0) -> Any:
    """A random field value: awkward strings and keys, integers at the edges, nesting."""
    alphabet = list('aZ\u00e9\u20ac\U0001f600\ufb33\u0000\u001f"\\/\u2028\u007f')
    kind = rng.randrange(7 if depth < 4 else 4)
    if kind == 0:
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(6)))
    if kind == 1:
        return rng.choice([0, 1, -1, 2**53 - 1, -(2**53 - 1), rng.randrange(-(10**12), 10**12)])
    if kind == 2:
        return rng.choice([True, False])
    if kind == 3:
        return None
    if kind == 4:
        return [_json_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {
        "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 4))): _json_value(
            rng, depth + 1
        )
        for _ in range(rng.randrange(5))
    }


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], Any]]:
    """Every (path, value) in a JSON tree, containers included."""
    found = [(path, node)]
    if isinstance(node, dict):
        for k, v in node.items():
            found += _leaves(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            found += _leaves(v, (*path, i))
    return found


def _variants(value: Any, rng: random.Random) -> list[Any]:
    """Plausible corruptions of one JSON value (never integers in [2^53, 2^64): a JS number
    cannot carry them exactly, a documented difference)."""
    if isinstance(value, bool) or value is None:
        return [0, "x"]
    if isinstance(value, int):
        return [value + 1, max(value - 1, 0), -1, 2**64, str(value), None, 1.5, True]
    if isinstance(value, str):
        out: list[Any] = [value + "0", value[:-1], value.upper(), "", 7]
        if value:
            i = rng.randrange(len(value))
            flipped = "1" if value[i] != "1" else "2"
            out.append(value[:i] + flipped + value[i + 1 :])
        return out
    if isinstance(value, list):
        out = [[], {}]
        if value:
            i = rng.randrange(len(value))
            out += [value[:i] + value[i + 1 :], [*value, value[i]]]
        if len(value) > 1:
            i = rng.randrange(len(value) - 1)
            out.append([*value[:i], value[i + 1], value[i], *value[i + 2 :]])
        return out
    assert isinstance(value, dict)
    out = [{**value, "extra": 1}, []]
    if value:
        key = rng.choice(sorted(value))
        out.append({k: v for k, v in value.items() if k != key})
    return out


def _replace(tree: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    mutated = copy.deepcopy(tree)
    node = mutated
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return mutated


def _mutations(vector: dict[str, Any], count: int) -> list[dict[str, Any]]:
    rng = random.Random(SEED)  # deterministic: a failure names a reproducible case
    points = _leaves(vector["bundle"])
    cases = []
    for _ in range(count):
        path, value = rng.choice(points)
        variant = rng.choice(_variants(value, rng))
        mutated = _replace(vector["bundle"], path, variant)
        ledger = None if rng.random() < 0.2 else vector["ledger"]
        cases.append({"bundle": mutated, "ledger": ledger, "path": list(path)})
    return cases


def test_jcs_agrees_with_the_python_rfc8785_library(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    values = [_json_value(rng) for _ in range(500)]
    values += [{"10": 1, "2": 2, "1": 3}, 1.5, 2**53]  # integer-like keys; refused numbers
    theirs = _node(tmp_path, values, "--jcs")
    for value, canonical in zip(values, theirs, strict=True):
        try:
            ours: str | None = rfc8785.dumps(value).decode()
        except rfc8785.CanonicalizationError:
            ours = None
        if isinstance(value, float) or (isinstance(value, int) and abs(value) >= 2**53):
            ours = None  # JCS has no exact form for these in a field: both verifiers refuse
        assert canonical == ours, value


def test_vectors_agree_check_for_check(tmp_path: Path) -> None:
    cases = []
    for f in sorted(VECTORS.glob("*.json")):
        vector = json.loads(f.read_text())
        cases += [
            {"bundle": vector["bundle"], "ledger": vector["ledger"], "path": [f.stem]},
            {"bundle": vector["bundle"], "ledger": None, "path": [f.stem, "offline"]},
        ]
    _assert_agree(cases, tmp_path)


def test_random_mutations_agree_check_for_check(tmp_path: Path) -> None:
    cases = _mutations(json.loads(VALID.read_text()), MUTATIONS)
    outcomes = _assert_agree(cases, tmp_path)
    # The mutations reach every kind of outcome, not only "unusable".
    assert sum(not o["usable"] for o in outcomes) > MUTATIONS // 10
    assert sum(o["usable"] and not o["ok"] for o in outcomes) > MUTATIONS // 10


def _assert_agree(cases: list[dict[str, Any]], tmp_path: Path) -> list[dict[str, Any]]:
    js = _javascript([{"bundle": c["bundle"], "ledger": c["ledger"]} for c in cases], tmp_path)
    assert len(js) == len(cases)
    outcomes = []
    for case, theirs in zip(cases, js, strict=True):
        ours = _python(case["bundle"], case["ledger"])
        where = f"mutation at {case['path']}: python {ours}, js {theirs}"
        assert ours["usable"] == theirs["usable"], where
        if ours["usable"]:
            assert ours["checks"] == theirs["checks"], where
        outcomes.append(ours)
    return outcomes


ERASED = VECTORS / "valid-erased-sender-log.json"


def test_random_mutations_of_an_erased_bundle_agree(tmp_path: Path) -> None:
    cases = _mutations(json.loads(ERASED.read_text()), MUTATIONS // 2)
    outcomes = _assert_agree(cases, tmp_path)
    assert sum(not o["usable"] for o in outcomes) > MUTATIONS // 20
    assert sum(o["usable"] and not o["ok"] for o in outcomes) > MUTATIONS // 20


def test_marking_events_erased_agrees(tmp_path: Path) -> None:
    """Any event of a valid bundle marked erased (its fields dropped, or not): both verifiers
    skip the same commitment checks, or both refuse the bundle."""
    vector = json.loads(VALID.read_text())
    cases = []
    for i, log in enumerate(vector["bundle"]["logs"]):
        for j in range(len(log["events"])):
            for drop in (True, False):
                bundle = copy.deepcopy(vector["bundle"])
                event = bundle["logs"][i]["events"][j]
                event["erased"] = True
                if drop:
                    event["revealed"], event["withheld"] = [], []
                cases.append({"bundle": bundle, "ledger": vector["ledger"], "path": [i, j, drop]})
    outcomes = _assert_agree(cases, tmp_path)
    assert [o["usable"] for o in outcomes] == [c["path"][2] for c in cases]
