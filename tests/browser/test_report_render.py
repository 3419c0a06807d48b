"""The dispute report in real headless Chromium: it prints to PDF, its first page is captured.

The report of the demo dispute (scripts/render_report.py: a late anchoring, a correction, a
revoked scanner key, a handoff, a pending delivery whose place was changed in the bundle) is
opened with JavaScript disabled, printed to an A4 PDF and its first page saved as a PNG, in a
temporary directory or in ``$PARCELPROOF_SCREENSHOTS`` (e.g. docs/screenshots) to refresh the
committed one.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from scripts.render_report import CHROMIUM, ROOT, build_dispute, render

from parcelproof.service.report import build_report, render_html

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(reason)  # CI installs it: never pass by skipping there
        pytest.skip(reason)
    if not (ROOT / "node_modules" / "playwright-core").is_dir():
        pytest.fail("node_modules/playwright-core is missing: run `make setup-node`")
    return CHROMIUM


def test_report_prints_to_pdf_and_its_first_page_is_captured(
    chromium: Path, tmp_path: Path
) -> None:
    dispute = build_dispute()
    report = build_report(dispute.tampered, dispute.ledger, now=dispute.now)
    page = tmp_path / "dispute-report.html"
    page.write_text(render_html(report), encoding="utf-8")
    shots = Path(os.environ.get("PARCELPROOF_SCREENSHOTS") or tmp_path)
    png, pdf = shots / "dispute-report.png", tmp_path / "dispute-report.pdf"

    shown = render(page, png=png, pdf=pdf, chromium=chromium)

    assert shown["problems"] == []  # no console error, no request for anything outside it
    assert shown["scripts"] == 0 and shown["title"].startswith("Dispute report")
    assert shown["pdfHeader"] == "%PDF-" and pdf.read_bytes()[:5] == b"%PDF-"
    assert shown["pages"] >= 2, shown
    assert shown["findings"] == len(report.findings)
    assert shown["rows"] == len(report.events)
    assert not shown["overflow"]  # nothing wider than the A4 sheet
    head = png.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", head[16:24])
    assert abs(height / width - 297 / 210) < 0.01  # one A4 page
    assert width >= 1500  # 2x: legible when printed or zoomed
