"""Proof bundles: strict parsing, round trip, and every verification check's failure mode."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from parcelproof.core.bundle import bundle_to_json, parse_bundle, verify_bundle
from parcelproof.core.errors import FormatError, TrailingGarbageError
from parcelproof.service.lookup import lookup
from tests.unit.conftest import NOW, World

PARCEL, POSTCODE = "PP100200300FR", "69002"


def _journey(w: World) -> dict[str, Any]:
    w.a.create_shipment(PARCEL, {"recipient": "Ada"}, POSTCODE)
    w.driver_a.record(w.a, PARCEL, {"status": "picked_up", "place": "Paris"}, NOW - 600)
    w.driver_a.record(w.a, PARCEL, {"status": "departed", "place": "Paris hub"}, NOW - 500)
    w.a.anchor()
    w.driver_a.record(w.a, PARCEL, {"status": "arrived", "place": "Lyon"}, NOW - 400)
    w.a.anchor()
    result = lookup([w.a, w.b], w.ledger, PARCEL, POSTCODE)
    assert result.bundle is not None
    return result.bundle


def _failed(w: World, bundle: dict[str, Any]) -> set[str]:
    return {c.name for c in verify_bundle(bundle, w.ledger).failures}


def test_an_honest_bundle_verifies(world: World) -> None:
    bundle = _journey(world)
    report = verify_bundle(bundle, world.ledger)
    assert report.ok, report.failures
    names = [c.name for c in report.checks]
    for check in ("ledger", "checkpoint", "hash-chain", "commitment", "signature", "agent-key"):
        assert check in names
    assert names.count("inclusion") == 3


def test_bundle_round_trips_through_json(world: World) -> None:
    bundle = _journey(world)
    text = json.dumps(bundle)
    assert bundle_to_json(parse_bundle(json.loads(text))) == bundle


def test_withheld_fields_are_only_digests(world: World) -> None:
    bundle = _journey(world)
    text = json.dumps(bundle)
    assert "Ada" not in text
    assert PARCEL not in text
    assert POSTCODE not in text


def test_changed_revealed_value_breaks_the_commitment(world: World) -> None:
    bundle = _journey(world)
    ev = bundle["logs"][0]["events"][1]
    next(f for f in ev["revealed"] if f["name"] == "place")["value"] = "Marseille"
    assert _failed(world, bundle) == {"commitment"}


def test_dropped_event_breaks_the_hash_chain(world: World) -> None:
    bundle = _journey(world)
    del bundle["logs"][0]["events"][1]
    assert "hash-chain" in _failed(world, bundle)


def test_reordered_events_break_the_hash_chain(world: World) -> None:
    bundle = _journey(world)
    events = bundle["logs"][0]["events"]
    events[0], events[1] = events[1], events[0]
    assert "hash-chain" in _failed(world, bundle)


def test_flipped_proof_byte_breaks_inclusion(world: World) -> None:
    bundle = _journey(world)
    proof = bundle["logs"][0]["events"][0]["inclusionProof"]
    proof[0] = proof[0][:-1] + ("0" if proof[0][-1] != "0" else "1")
    assert _failed(world, bundle) == {"inclusion"}


def test_shifted_leaf_index_breaks_inclusion(world: World) -> None:
    bundle = _journey(world)
    bundle["logs"][0]["events"][0]["leafIndex"] = 1
    assert "inclusion" in _failed(world, bundle)


def test_root_never_anchored_is_caught(world: World) -> None:
    bundle = _journey(world)
    del bundle["logs"][0]["earlier"]
    bundle["logs"][0]["checkpoint"]["size"] = 1
    assert "checkpoint" in _failed(world, bundle)


def test_earlier_checkpoint_is_proven_consistent(world: World) -> None:
    bundle = _journey(world)
    [earlier] = bundle["logs"][0]["earlier"]
    assert earlier["size"] == 2  # the first two events were anchored at size 2
    checks = verify_bundle(bundle, world.ledger).checks
    assert [c.ok for c in checks if c.name == "consistency"] == [True]
    earlier["consistencyProof"][0] = "0x" + "00" * 32
    assert _failed(world, bundle) == {"consistency"}


def test_earlier_checkpoint_the_ledger_never_saw(world: World) -> None:
    bundle = _journey(world)
    bundle["logs"][0]["earlier"][0]["root"] = "0x" + "11" * 32
    assert _failed(world, bundle) == {"checkpoint", "consistency"}


def test_earlier_checkpoints_must_grow_below_the_checkpoint(world: World) -> None:
    bundle = _journey(world)
    bundle["logs"][0]["earlier"][0]["size"] = 3
    with pytest.raises(FormatError, match="must grow and stay below"):
        parse_bundle(bundle)


def test_signature_of_another_agent_is_caught(world: World) -> None:
    bundle = _journey(world)
    bundle["logs"][0]["events"][0]["agent"] = world.driver_b.address
    assert {"signature", "agent-key"} <= _failed(world, bundle)


def test_key_outside_its_window_is_caught(world: World) -> None:
    bundle = _journey(world)
    world.ledger.agents[world.driver_a.address] = (world.a.courier_id, NOW, NOW + 10)
    assert _failed(world, bundle) == {"agent-key"}


def test_other_chain_is_caught(world: World) -> None:
    bundle = _journey(world)
    bundle["chain"]["chainId"] = 1
    assert "ledger" in _failed(world, bundle)


def test_pending_events_are_reported_not_failed(world: World) -> None:
    _journey(world)
    world.driver_a.record(world.a, PARCEL, {"status": "out_for_delivery", "place": "Lyon"}, NOW)
    result = lookup([world.a], world.ledger, PARCEL, POSTCODE)
    assert result.report is not None and result.report.ok
    assert [t.anchoring for t in result.timeline] == ["anchored"] * 3 + ["pending"]
    assert result.bundle is not None
    assert result.bundle["logs"][0]["events"][-1]["inclusionProof"] is None


@pytest.mark.parametrize(
    ("desc", "mutate", "error", "message"),
    [
        (
            "unknown top-level key",
            lambda b: b.update(extra=1),
            TrailingGarbageError,
            "unknown keys extra",
        ),
        ("missing logs", lambda b: b.pop("logs"), FormatError, "lacks logs"),
        (
            "future version",
            lambda b: b.update(version=2),
            FormatError,
            "unsupported bundle version",
        ),
        ("wrong format tag", lambda b: b.update(format="x"), FormatError, "bundle.format"),
        (
            "short root",
            lambda b: b["logs"][0]["checkpoint"].update(root="0x00"),
            FormatError,
            "has 1 bytes, want 32",
        ),
        (
            "root not hex",
            lambda b: b["logs"][0]["checkpoint"].update(root="0xzz"),
            FormatError,
            "not valid hex",
        ),
        (
            "negative size",
            lambda b: b["logs"][0]["checkpoint"].update(size=-1),
            FormatError,
            "integer",
        ),
        (
            "boolean size",
            lambda b: b["logs"][0]["checkpoint"].update(size=True),
            FormatError,
            "integer",
        ),
        (
            "proof not a list",
            lambda b: b["logs"][0]["events"][0].update(inclusionProof="0x"),
            FormatError,
            "must be a list",
        ),
        (
            "truncated signature",
            lambda b: b["logs"][0]["events"][0].update(signature="0x" + "11" * 64),
            FormatError,
            "has 64 bytes, want 65",
        ),
        (
            "overlong proof",
            lambda b: b["logs"][0]["events"][0].update(inclusionProof=["0x" + "00" * 32] * 65),
            FormatError,
            "at most 64",
        ),
        ("no logs", lambda b: b.update(logs=[]), FormatError, "bundle.logs is empty"),
        (
            "duplicate log",
            lambda b: b["logs"].append(copy.deepcopy(b["logs"][0])),
            FormatError,
            "appears twice",
        ),
        (
            "index without proof",
            lambda b: b["logs"][0]["events"][0].update(inclusionProof=None),
            FormatError,
            "leafIndex without",
        ),
    ],
)
def test_malformed_bundles_are_refused(
    world: World, desc: str, mutate: Any, error: type[Exception], message: str
) -> None:
    bundle = _journey(world)
    mutate(bundle)
    with pytest.raises(error, match=message):
        parse_bundle(bundle)


def test_not_an_object_is_refused() -> None:
    with pytest.raises(FormatError, match="bundle must be an object"):
        parse_bundle([1, 2])
