"""Redaction only withholds: the smaller bundle verifies exactly like the original."""

from __future__ import annotations

import json

import pytest

from parcelproof.core.bundle import LedgerSnapshot, bundle_to_json, parse_bundle, verify_bundle
from parcelproof.core.errors import FormatError
from parcelproof.core.redact import keep_fields, redact
from tests.unit.test_bundle_vectors import VECTORS

CASE = json.loads((VECTORS / "valid-handoff-delivery.json").read_text())
LEDGER = LedgerSnapshot.from_json(CASE["ledger"])


def test_delivered_at_t_only_still_verifies() -> None:
    smaller = redact(parse_bundle(CASE["bundle"]), keep_fields(["status", "time"], ["delivered"]))
    report = verify_bundle(smaller, LEDGER)
    assert report.ok, report.failures
    revealed = [
        {f.name: f.value for f in ev.disclosure.revealed} for lg in smaller.logs for ev in lg.events
    ]
    assert [r for r in revealed if r] == [{"status": "delivered", "time": revealed[-1]["time"]}]
    text = json.dumps(bundle_to_json(smaller))
    assert "Antwerp" not in text and "handoff_id" not in text


def test_redacting_everything_but_status() -> None:
    smaller = redact(parse_bundle(CASE["bundle"]), keep_fields(["status"]))
    assert verify_bundle(smaller, LEDGER).ok
    for lg in smaller.logs:
        for ev in lg.events:
            assert [f.name for f in ev.disclosure.revealed] == ["status"]


def test_redaction_cannot_reveal_more() -> None:
    original = parse_bundle(CASE["bundle"])
    same = redact(original, keep_fields(["status", "time", "place", "no_such_field"]))
    before = sum(len(ev.disclosure.revealed) for lg in original.logs for ev in lg.events)
    after = sum(len(ev.disclosure.revealed) for lg in same.logs for ev in lg.events)
    assert after <= before


def test_keep_nothing_is_refused() -> None:
    with pytest.raises(FormatError, match="at least one field"):
        keep_fields([" "])
