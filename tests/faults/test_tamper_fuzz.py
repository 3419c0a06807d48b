"""CI tamper fuzz: seeded single-byte mutations of stored rows and bundles are all caught."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from parcelproof.core.bundle import LedgerView, Report, verify_bundle
from parcelproof.service import lookup as lookup_module
from tests.faults import tamper
from tests.faults.tamper import DETECTED, HARMLESS, KINDS, STORED, UNDETECTED, World

pytestmark = pytest.mark.slow

SEED = 20240917
COUNT = 150  # the CI share; scripts/tamper_fuzz.py runs 1,000
BUNDLE_REASONS = (
    "JSON whitespace only",
    "hex digit case only",
    "address letter case only",
    "case of a \\u escape only",
)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with tamper.open_world(SEED) as w:
        yield w


def test_every_seeded_mutation_is_detected_or_proven_harmless(world: World) -> None:
    tally = tamper.run(SEED, COUNT, world=world, recheck_every=10)

    assert tally.total == COUNT
    assert tally.undetected == 0, "\n".join(tally.undetected_descriptions())
    assert tally.crashes() == []
    assert tally.detected + tally.harmless == COUNT
    by_kind = tally.by_kind()
    assert set(by_kind) == set(KINDS), "every target kind is hit"
    for kind, row in by_kind.items():
        assert row["total"] >= COUNT // len(KINDS), f"{kind} got less than its even share"
        assert row[DETECTED] > 0, f"no mutation of {kind} was detected"
    for outcome in tally.outcomes:
        if outcome.verdict == HARMLESS:
            assert outcome.reason, outcome
            if outcome.kind == "bundle":
                assert outcome.reason.startswith(BUNDLE_REASONS), outcome
            else:
                assert "byte-identical" in outcome.reason, outcome
        else:
            assert outcome.detector, outcome
    assert tally.rechecks > 0


def test_the_run_is_reproducible_from_its_seed(world: World) -> None:
    first = tamper.run(SEED + 1, 6, world=world, recheck_every=0)
    again = tamper.run(SEED + 1, 6, world=world, recheck_every=0)
    assert [(o.target, o.where, o.verdict) for o in first.outcomes] == [
        (o.target, o.where, o.verdict) for o in again.outcomes
    ]
    assert sorted(o.kind for o in first.outcomes) == sorted(KINDS), "a round hits every kind"


def _latest_checkpoint_row(world: World) -> tuple[tamper.Cell, int]:
    cell = STORED["checkpoint"][0]
    rowid, _value, _label = tamper._rows(world, cell)[-1]
    return cell, rowid


def _earliest_checkpoint_row(world: World) -> tuple[tamper.Cell, int]:
    """A checkpoint that is not its log's latest: bundles cite it, reconcile does not read it."""
    cell = STORED["checkpoint"][0]
    rowid, _value, _label = tamper._rows(world, cell)[0]
    return cell, rowid


def test_a_mutation_reverted_before_verification_is_classified_harmless(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The verdict follows what verification saw: the same flip is detected when it lands and
    is harmless (with byte-identical answers) when it is undone before anyone looks."""
    cell, rowid = _latest_checkpoint_row(world)
    landed = tamper.tamper_row(world, "checkpoint", cell, rowid, 0, 0xFF)
    assert landed.verdict == DETECTED and landed.detector == "verify_bundle: checkpoint"

    write = tamper._write

    def write_and_undo(engine: Engine, c: tamper.Cell, r: int, value: bytes) -> None:
        original = tamper._read(engine, c, r)
        write(engine, c, r, value)
        write(engine, c, r, original)

    monkeypatch.setattr(tamper, "_write", write_and_undo)
    undone = tamper.tamper_row(world, "checkpoint", cell, rowid, 0, 0xFF)
    assert undone.verdict == HARMLESS
    assert "byte-identical" in undone.reason


def test_a_neutered_verifier_makes_the_engine_report_undetected(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A verifier that forgets its failed checks must not slip through as 'detected' or
    'harmless': stored and bundle mutations then come out undetected."""

    def neutered(bundle: Any, ledger: LedgerView | None) -> Report:
        return Report([c for c in verify_bundle(bundle, ledger).checks if c.ok])

    monkeypatch.setattr(lookup_module, "verify_bundle", neutered)
    monkeypatch.setattr(world, "verify", neutered)
    assert tamper.observe(world) == world.baseline  # the untouched world looks the same

    cell, rowid = _earliest_checkpoint_row(world)
    stored = tamper.tamper_row(world, "checkpoint", cell, rowid, 0, 0xFF)
    assert stored.verdict == UNDETECTED, stored
    assert "answer changed" in stored.reason

    tracking_number = world.parcels[0].tracking_number
    text = world.bundles[tracking_number]
    position = text.index('"commitment": "0x') + len('"commitment": "0x')
    mask = ord(text[position]) ^ ord("0" if text[position] != "0" else "1")  # another hex digit
    bundle = tamper.tamper_bundle(world, tracking_number, position, mask)
    assert bundle.verdict == UNDETECTED, bundle
    assert "means something else" in bundle.reason
