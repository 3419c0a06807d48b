"""Dispute report: built from a bundle and a real chain only, every finding, every value escaped.

The scenario (scripts/render_report.py, also behind docs/screenshots/dispute-report.png) runs
on the embedded chain, moved forward in time between scans: courier A picks the parcel up three
hours before anchoring it, its depot scanner books the wrong bay and corrects it (a note holds a
``<script>``), the scanner's key is revoked afterwards, A hands the parcel to B with both
drivers' countersignatures, B delivers and has not anchored the delivery yet.
"""

from __future__ import annotations

import copy
import json
import secrets
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from scripts.render_report import NOTE, PARCEL, Dispute, build_dispute, tamper_place
from typer.testing import CliRunner

from parcelproof.chain import devnet
from parcelproof.chain.devnet import Anvil
from parcelproof.cli import app
from parcelproof.core.bundle import verify_bundle
from parcelproof.core.errors import FormatError
from parcelproof.service.agent import Agent
from parcelproof.service.lookup import dispute_bundle
from parcelproof.service.report import (
    LATE_AFTER,
    DisputeReport,
    Severity,
    build_report,
    render_html,
)
from parcelproof.store.memory import MemoryStore
from tests.conftest import make_courier
from tests.unit.test_bundle_vectors import VECTORS

HOUR = 3600
W, N, C = Severity.WARNING, Severity.NOTICE, Severity.CRITICAL
HOSTILE = '"><img src=x onerror=alert(1)><script>alert(2)</script>'
runner = CliRunner()


@pytest.fixture(scope="module")
def dispute() -> Dispute:
    return build_dispute()


@pytest.fixture(scope="module")
def clean(dispute: Dispute) -> DisputeReport:
    return build_report(dispute.bundle, dispute.ledger, now=dispute.now)


def _found(report: DisputeReport) -> dict[tuple[str, str], Severity]:
    return {(f.code, f.subject): f.severity for f in report.findings}


def _event(report: DisputeReport, log: str, sequence: int) -> Any:
    return next(e for e in report.events if (e.log_label, e.sequence) == (log, sequence))


def _counts_match(report: DisputeReport, bundle: dict[str, Any], dispute: Dispute) -> None:
    verified = verify_bundle(bundle, dispute.ledger)
    assert report.total == len(verified.checks)
    assert report.passed == sum(1 for c in verified.checks if c.ok and not c.skipped)
    assert report.failed == len(verified.failures)
    assert len(report.skipped) == len(verified.skipped)
    assert f"{report.passed} of {report.total} checks passed" in render_html(report)


# --- the honest bundle ----------------------------------------------------------------------


def test_summary_counts_are_the_verifiers(dispute: Dispute, clean: DisputeReport) -> None:
    _counts_match(clean, dispute.bundle, dispute)
    assert clean.failed == 0
    assert [(c.name, c.subject.endswith("event #2")) for c in clean.skipped] == [
        ("inclusion", True)
    ]
    assert clean.summary == f"{clean.total - 1} of {clean.total} checks passed, 1 skipped"
    assert clean.verdict == "VALID AS FAR AS CHECKED"


def test_findings_of_an_honest_dispute(dispute: Dispute, clean: DisputeReport) -> None:
    assert _found(clean) == {
        ("late-anchoring", "log A event #0"): W,
        ("key-revoked-later", f"key {dispute.scanner_a.address}"): N,
        ("correction", "log A event #2"): N,
        ("handoff", "log A event #3 / log B event #0"): N,
        ("pending", "log B event #2"): N,
    }
    assert [f.severity for f in clean.findings] == sorted(
        (f.severity for f in clean.findings), key=[C, W, N].index
    )


def test_each_event_has_its_block_time_and_anchoring_delay(
    dispute: Dispute, clean: DisputeReport
) -> None:
    for ev in clean.events:
        if (ev.log_label, ev.sequence) == ("B", 2):
            assert ev.leaf_index is None and ev.anchoring is None
            continue
        a = ev.anchoring
        assert a is not None and a.in_bundle
        block = dispute.w3.eth.get_block(a.block_number or 0)
        assert a.block_time == block["timestamp"]
        assert a.delay == a.block_time - ev.event_time
        assert a.checkpoint_size > (ev.leaf_index or 0)
    late = _event(clean, "A", 0).anchoring
    assert late is not None and late.delay >= 3 * HOUR > LATE_AFTER
    # The wrong scan and its correction went into the same checkpoint.
    wrong, fix = _event(clean, "A", 1).anchoring, _event(clean, "A", 2).anchoring
    assert wrong is not None and fix is not None
    assert (wrong.block_number, wrong.checkpoint_size) == (fix.block_number, fix.checkpoint_size)
    assert [e.event_time for e in clean.events] == sorted(e.event_time for e in clean.events)


def test_who_signed_each_event_and_with_which_key(dispute: Dispute, clean: DisputeReport) -> None:
    signers = {(e.log_label, e.sequence): e.agent for e in clean.events}
    assert signers == {
        ("A", 0): dispute.driver_a.address,
        ("A", 1): dispute.scanner_a.address,
        ("A", 2): dispute.scanner_a.address,
        ("A", 3): dispute.driver_a.address,
        ("B", 0): dispute.driver_b.address,
        ("B", 1): dispute.driver_b.address,
        ("B", 2): dispute.driver_b.address,
    }
    scanner = _event(clean, "A", 1).key
    assert scanner.registered and scanner.courier_id == dispute.a.courier_id
    assert scanner.revoked_at is not None and scanner.revoked_at > _event(clean, "A", 2).event_time
    assert _event(clean, "A", 0).key.revoked_at is None
    assert {k.agent for k in clean.keys} == {
        dispute.driver_a.address,
        dispute.scanner_a.address,
        dispute.driver_b.address,
    }


def test_a_handoff_shows_both_signatures(dispute: Dispute, clean: DisputeReport) -> None:
    (handoff,) = clean.handoffs
    assert (handoff.from_log, handoff.to_log) == ("A", "B")
    offered, accepted = handoff.sides
    assert (offered.event.subject, accepted.event.subject) == ("log A event #3", "log B event #0")
    assert offered.countersigner == dispute.driver_b.address
    assert accepted.countersigner == dispute.driver_a.address
    for side in handoff.sides:
        assert side.countersignature is not None and side.countersignature.ok
        assert not side.countersignature.skipped
        assert side.event.check("signature") is not None
    assert accepted.reference is not None and accepted.reference.ok  # handoff_of in the bundle
    assert offered.reference is None


def test_a_correction_names_what_it_corrects_and_what_changed(clean: DisputeReport) -> None:
    (f,) = (f for f in clean.findings if f.code == "correction")
    assert f.title == "Log A event #2 corrects log A event #1 (status stays arrived)"
    assert "place Utrecht hub, bay 7 → Utrecht hub, bay 9" in f.explanation
    assert "Nothing was edited" in f.explanation


def test_checkpoints_and_their_consistency(clean: DisputeReport) -> None:
    a, b = clean.logs
    assert (a.label, b.label) == ("A", "B")
    assert [c.size for c in a.earlier] == [1, 3] and a.checkpoint.size == 4
    for cp in (*a.earlier, a.checkpoint, *b.earlier, b.checkpoint):
        assert cp.on_chain is not None and cp.on_chain.ok
        assert cp.block_number is not None and cp.block_time is not None
    assert all(cp.consistency is not None and cp.consistency.ok for cp in a.earlier)
    assert (a.chain_checkpoints, a.chain_latest_size) == (3, 4)


def test_the_report_states_its_sources_and_how_to_reverify(
    dispute: Dispute, clean: DisputeReport
) -> None:
    page = render_html(clean)
    text = " ".join(page.split())
    assert "Built only from the proof bundle and the chain." in text
    assert "parcelproof verify bundle.json --rpc URL" in text
    assert str(dispute.ledger.chain_id) in text and dispute.ledger.address in text
    assert clean.bundle_sha256.hex() in text
    assert "inclusion</strong> of log B event #2 &mdash; pending" in text  # skipped, and why
    for ref in (dispute.a, dispute.b):
        assert "0x" + ref.event_context(PARCEL).shipment.hex() in text
    # The tracking number is not revealed by the bundle, so the report does not show it.
    assert PARCEL not in text and PARCEL.replace(" ", "") not in text


def test_the_page_is_self_contained_print_ready_and_scriptless(clean: DisputeReport) -> None:
    page = render_html(clean)
    assert page.startswith("<!DOCTYPE html>")
    assert "@page" in page and "size: A4" in page
    assert "default-src 'none'" in page  # even an escaping bug could not run a script
    tags = _Tags.of(page)
    assert "script" not in tags.names and not tags.handlers and not tags.links


def test_a_clean_parcel_has_nothing_to_highlight() -> None:
    c = make_courier(devnet.connect(None), lambda _: MemoryStore(), "clean")
    c.node.create_shipment(PARCEL, {}, "1016 GV")
    c.driver.record(c.node, PARCEL, {"status": "picked_up", "place": "Delft"}, c.now - 60)
    assert c.node.anchor() is not None
    bundle = dispute_bundle([c.node], c.ledger, PARCEL).bundle
    assert bundle is not None
    report = build_report(bundle, c.ledger, bundle_sha256=bytes(32))
    assert report.findings == () and report.verdict == "VALID"
    assert report.summary == f"{report.total} of {report.total} checks passed"
    assert report.bundle_digest_of == "the bundle file as received"
    page = " ".join(render_html(report).split())
    assert "Nothing to highlight" in page and "none failed, none skipped" in page


# --- escaping -------------------------------------------------------------------------------


class _Tags(HTMLParser):
    """Every element and every attribute a browser would build from the page."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()
        self.handlers: list[str] = []
        self.links: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.names.add(tag)
        self.handlers += [k for k, _ in attrs if k.startswith("on")]
        self.links += [v or "" for k, v in attrs if k in ("src", "href", "action")]

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    @classmethod
    def of(cls, page: str) -> _Tags:
        parser = cls()
        parser.feed(page)
        return parser


def test_every_value_is_escaped(dispute: Dispute, clean: DisputeReport) -> None:
    page = render_html(clean)
    assert "&lt;script&gt;alert(&#x27;bay&#x27;)&lt;/script&gt;" in page
    assert "<script" not in page.lower()
    assert NOTE in "".join(_Tags.of(page).text)  # shown as text, exactly as revealed


def test_hostile_values_stay_text_in_every_section(dispute: Dispute) -> None:
    # A's wrong scan gets a hostile place: it appears in the timeline, in the correction's
    # explanation and in the failed check's detail.
    bundle = tamper_place(dispute.bundle, "A", 1, HOSTILE)
    report = build_report(bundle, dispute.ledger, now=dispute.now)
    assert any(HOSTILE in f.explanation for f in report.findings)
    page = render_html(report)
    tags = _Tags.of(page)
    assert not {"img", "script"} & tags.names and not tags.handlers and not tags.links
    assert "".join(tags.text).count(HOSTILE) >= 2


# --- what is suspicious ---------------------------------------------------------------------


def test_a_tampered_value_is_a_critical_failure(dispute: Dispute) -> None:
    report = build_report(dispute.tampered, dispute.ledger, now=dispute.now)
    _counts_match(report, dispute.tampered, dispute)
    assert report.failed == 1 and report.verdict == "INVALID"
    (critical,) = (f for f in report.findings if f.severity is C)
    assert (critical.code, critical.subject, critical.checks) == (
        "check-commitment",
        "log B event #2",
        ("commitment",),
    )
    assert critical.title == "Log B event #2: revealed values differ from what was signed"
    assert not _event(report, "B", 2).verified_fields
    page = render_html(report)
    assert '<div class="verdict-word">INVALID</div>' in page
    assert page.count('class="row-critical"') == 1
    assert "values unverified" in page


def test_a_missing_event_is_a_gap_in_the_hash_chain(dispute: Dispute) -> None:
    bundle = copy.deepcopy(dispute.bundle)
    del bundle["logs"][0]["events"][1]  # A #1, the wrong scan, left out
    report = build_report(bundle, dispute.ledger, now=dispute.now)
    _counts_match(report, bundle, dispute)
    found = {f.code: f for f in report.findings if f.severity is not N}
    gap = found["sequence-gap"]
    assert (gap.severity, gap.subject, gap.checks) == (C, "log A event #2", ("hash-chain",))
    assert gap.title == "Event #1 of log A missing"
    assert "check-hash-chain" not in found  # the gap explains the failed check
    assert found["correction-unknown"].subject == "log A event #2"
    assert report.failed == 1


def test_a_replaced_link_breaks_the_hash_chain(dispute: Dispute) -> None:
    bundle = copy.deepcopy(dispute.bundle)
    bundle["logs"][0]["events"][3]["previous"] = "0x" + secrets.token_hex(32)
    report = build_report(bundle, dispute.ledger, now=dispute.now)
    _counts_match(report, bundle, dispute)
    critical = {(f.code, f.subject) for f in report.findings if f.severity is C}
    assert critical == {
        ("hash-chain-break", "log A event #3"),
        ("check-commitment", "log A event #3"),  # previous is part of the commitment
    }


def test_anchoring_threshold_is_configurable(dispute: Dispute) -> None:
    lenient = build_report(dispute.bundle, dispute.ledger, late_after=4 * HOUR, now=dispute.now)
    assert not any(f.code == "late-anchoring" for f in lenient.findings)
    strict = build_report(dispute.bundle, dispute.ledger, late_after=15 * 60, now=dispute.now)
    late = {f.subject for f in strict.findings if f.code == "late-anchoring"}
    assert late == {"log A event #0", "log A event #1", "log B event #1"}  # +3 h, +20, +30 min
    with pytest.raises(FormatError, match="positive number of seconds"):
        build_report(dispute.bundle, dispute.ledger, late_after=0)


def test_an_event_left_pending_too_long_is_a_warning(dispute: Dispute) -> None:
    later = build_report(dispute.bundle, dispute.ledger, now=dispute.now + 2 * HOUR)
    assert _found(later)[("pending", "log B event #2")] is W


class _AnyKey:
    """A node's key check that lets every key through: a node that skips the rule."""

    def is_agent_key_valid(self, courier_id: bytes, agent: str, at: int) -> bool:
        return True


def test_events_signed_after_revocation_or_outside_the_window() -> None:
    dispute = build_dispute()
    a, now = dispute.a, dispute.a.clock.now()
    a.agent_keys = _AnyKey()  # A's node no longer checks keys on ingest
    dispute.scanner_a.record(a, PARCEL, {"status": "exception", "note": "revoked"}, now - 60)
    early = Agent(secrets.token_bytes(32))  # registered, but valid only from tomorrow
    dispute.ledger.register_agent_key(
        early.address, now + 86400, now + 2 * 86400, sender=dispute.account_a
    )
    early.record(a, PARCEL, {"status": "exception", "note": "too early"}, now - 30)
    assert a.anchor() is not None
    bundle = dispute.fresh_bundle()
    report = build_report(bundle, dispute.ledger, now=now)
    _counts_match(report, bundle, dispute)
    critical = {(f.code, f.subject, f.checks) for f in report.findings if f.severity is C}
    assert critical == {
        ("key-revoked", "log A event #4", ("agent-key",)),
        ("key-window", "log A event #5", ("agent-key",)),
    }
    revoked = next(f for f in report.findings if f.code == "key-revoked")
    assert revoked.title == "Log A event #4: signed after the key was revoked"
    assert "the key was revoked at" in revoked.explanation
    # The events it signed before the revocation still count.
    assert ("key-revoked-later", f"key {dispute.scanner_a.address}") in _found(report)


def test_erased_events_are_said_to_be_erased() -> None:
    dispute = build_dispute()
    dispute.b.erase(PARCEL, "request")
    bundle = dispute.fresh_bundle()
    report = build_report(bundle, dispute.ledger, now=dispute.now)
    _counts_match(report, bundle, dispute)
    assert report.failed == 0
    assert {c.name for c in report.skipped} == {"commitment", "inclusion"}
    found = _found(report)
    assert found[("erased", "log B")] is N
    assert found[("handoff-one-sided", "log A event #3")] is W  # B's side no longer shows it
    erased = next(f for f in report.findings if f.code == "erased")
    assert "#0, #1, #2" in erased.explanation
    assert "erased: fields and salts destroyed" in render_html(report)


# --- the command line -----------------------------------------------------------------------


def _vector(tmp_path: Path) -> Path:
    path = tmp_path / "bundle.json"
    vector = json.loads((VECTORS / "valid-handoff-delivery.json").read_text())
    path.write_text(json.dumps(vector["bundle"]))
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.json", "--rpc", "http://127.0.0.1:9"], "cannot read"),
        (["{bundle}"], "give --rpc URL"),
        (["{bundle}", "--rpc", "ftp://example"], "unsupported JSON-RPC URL"),
        (["{bundle}", "--rpc", "http://127.0.0.1:9", "--late-after", "0"], "--late-after"),
    ],
)
def test_cli_refuses_unusable_input(tmp_path: Path, args: list[str], message: str) -> None:
    bundle = str(_vector(tmp_path))
    argv = ["dispute", "report", *(a.replace("{bundle}", bundle) for a in args)]
    out = tmp_path / "report.html"
    result = runner.invoke(app, [*argv, "--out", str(out)], env={"PARCELPROOF_RPC_URL": ""})
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output and not out.exists()


@pytest.mark.anvil
@pytest.mark.slow
def test_cli_writes_the_report_and_exits_1_on_a_failed_check(tmp_path: Path) -> None:
    with Anvil() as node:  # its own chain: the scenario moves the chain's clock forward
        dispute = build_dispute(node.url)
        for name, bundle, code, verdict in (
            ("good", dispute.bundle, 0, "VALID AS FAR AS CHECKED"),
            ("tampered", dispute.tampered, 1, "INVALID"),
        ):
            path, out = tmp_path / f"{name}.json", tmp_path / f"{name}.html"
            path.write_text(json.dumps(bundle))
            result = runner.invoke(
                app, ["dispute", "report", str(path), "--rpc", node.url, "--out", str(out)]
            )
            assert result.exit_code == code, result.output
            assert f"wrote {out}: {verdict}" in " ".join(result.output.split())
            page = out.read_text()
            assert f'<div class="verdict-word">{verdict}</div>' in page
            assert out.stat().st_mode & 0o777 == 0o600  # it holds what the bundle reveals
