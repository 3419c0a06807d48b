"""Regenerate docs/screenshots/dispute-report.png: a dispute report of a demo scenario, printed
by Debian's Chromium (through playwright-core), first A4 page as a PNG.

The scenario runs on a real chain (the embedded eth-tester one by default, moved forward in
time between scans): two couriers A and B, a late-anchored pick-up, a correction by a depot
scanner whose key is revoked afterwards, a countersigned handoff from A to B, a delivery that
is not anchored yet, and a bundle in which someone changed the delivery place afterwards.

    .venv/bin/python scripts/render_report.py [--png PATH] [--pdf PATH] [--html PATH]

tests/browser/test_report_render.py renders the same scenario with :func:`render`.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3

from parcelproof.chain import devnet
from parcelproof.chain.ledger import LedgerClient
from parcelproof.core import eip712, envelope
from parcelproof.core.bundle import hex32
from parcelproof.service.agent import Agent
from parcelproof.service.lookup import dispute_bundle
from parcelproof.service.node import CourierNode
from parcelproof.service.report import build_report, render_html
from parcelproof.store.memory import MemoryStore

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
PNG = ROOT / "docs" / "screenshots" / "dispute-report.png"
PARCEL, POSTCODE = "PP 2026 0042 NL", "1016 GV"
HOUR, DAY = 3600, 86400
NOTE = "<script>alert('bay')</script> scanned at the wrong bay"


class ChainClock:
    """The node's clock: the chain's latest block time (which the scenario moves forward)."""

    def __init__(self, w3: Web3) -> None:
        self.w3 = w3

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])


def travel(w3: Web3, seconds: int) -> None:
    """Move the chain's time forward (eth-tester or anvil) and mine a block."""
    if devnet.is_embedded(w3):
        now = int(w3.eth.get_block("latest")["timestamp"])
        w3.provider.ethereum_tester.time_travel(now + seconds)  # type: ignore[attr-defined]
    else:
        w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


@dataclass
class Dispute:
    """The demo dispute: the chain, both couriers' nodes and agents, and the bundles."""

    w3: Web3
    ledger: LedgerClient
    a: CourierNode
    b: CourierNode
    driver_a: Agent
    scanner_a: Agent  # its key is revoked after it signed A #1 and A #2
    driver_b: Agent
    account_a: LocalAccount
    account_b: LocalAccount
    bundle: dict[str, Any]  # the dispute bundle as the couriers' nodes built it
    tampered: dict[str, Any]  # the same, with B #2's revealed place changed afterwards
    now: int  # chain time after the last scan

    def fresh_bundle(self) -> dict[str, Any]:
        result = dispute_bundle([self.a, self.b], self.ledger, PARCEL)
        if result.bundle is None:
            raise RuntimeError("no courier anchored the parcel yet")
        return result.bundle


def _node(w3: Web3, ledger: LedgerClient, name: str, account: LocalAccount) -> CourierNode:
    cid = hashlib.sha256(f"{name}-{secrets.token_hex(4)}".encode()).digest()
    keyring = envelope.Keyring([envelope.KeyEncryptionKey("k1", secrets.token_bytes(32))], "k1")
    return CourierNode(
        courier_id=cid,
        ledger=ledger,
        account=account,
        keyring=keyring,
        shipment_key=secrets.token_bytes(32),
        store=MemoryStore(),
        clock=ChainClock(w3),
    )


def build_dispute(rpc_url: str | None = None) -> Dispute:
    """Play the demo scenario on a fresh ledger (embedded chain unless ``rpc_url``)."""
    w3 = devnet.connect(rpc_url)
    admin, account_a, account_b = devnet.funded_accounts(w3, 3)
    ledger = LedgerClient.deploy(w3, admin)
    a, b = _node(w3, ledger, "A", account_a), _node(w3, ledger, "B", account_b)
    ledger.admit_courier(a.courier_id, account_a.address, sender=admin)
    ledger.admit_courier(b.courier_id, account_b.address, sender=admin)
    driver_a, scanner_a, driver_b = (Agent(secrets.token_bytes(32)) for _ in range(3))
    t0 = a.clock.now()
    for agent, account in ((driver_a, account_a), (scanner_a, account_a), (driver_b, account_b)):
        ledger.register_agent_key(agent.address, t0 - DAY, t0 + 30 * DAY, sender=account)
    a.create_shipment(PARCEL, {"recipient": "M. de Vries"}, POSTCODE)
    code = b.create_shipment(PARCEL, {"recipient": "M. de Vries"}, POSTCODE).confirmation_code

    # A: picked up three hours before its node anchors it (late).
    t0 = a.clock.now()
    pickup = {"status": "picked_up", "place": "Rotterdam, Coolsingel 40", "note": "1 box, 4.2 kg"}
    driver_a.record(a, PARCEL, pickup, t0 - 3 * HOUR)
    a.anchor()

    # An hour later the depot scanner books the wrong bay, then corrects it.
    travel(w3, HOUR)
    t1 = a.clock.now()
    wrong = scanner_a.record(
        a, PARCEL, {"status": "arrived", "place": "Utrecht hub, bay 7"}, t1 - 20 * 60
    )
    fix = {
        "status": "corrected",
        "corrects": hex32(wrong.commitment),
        "corrected_status": "arrived",
        "place": "Utrecht hub, bay 9",
        "note": NOTE,
    }
    scanner_a.record(a, PARCEL, fix, t1 - 10 * 60)
    a.anchor()

    # Handoff A -> B, countersigned by both drivers at the scan.
    travel(w3, HOUR // 2)
    t2 = a.clock.now()
    ref_a, ref_b = a.event_context(PARCEL).shipment, b.event_context(PARCEL).shipment
    h = eip712.Handoff(secrets.token_bytes(32), a.courier_id, ref_a, b.courier_id, ref_b, t2 - 300)
    sig_a, sig_b = driver_a.sign_handoff(a.domain, h), driver_b.sign_handoff(b.domain, h)
    common = {"handoff_id": hex32(h.handoff_id), "handoff_time": h.handoff_time}
    offered = driver_a.record(
        a,
        PARCEL,
        {
            "status": "handoff_offered",
            "place": "Utrecht hub",
            "handoff_to": hex32(b.courier_id),
            "counterparty_shipment": hex32(ref_b),
            "counterparty_agent": driver_b.address,
            "counterparty_signature": "0x" + sig_b.hex(),
            **common,
        },
        t2 - 300,
    )
    driver_b.record(
        b,
        PARCEL,
        {
            "status": "handoff_accepted",
            "place": "Utrecht hub",
            "handoff_from": hex32(a.courier_id),
            "counterparty_shipment": hex32(ref_a),
            "counterparty_agent": driver_a.address,
            "counterparty_signature": "0x" + sig_a.hex(),
            "handoff_of": hex32(offered.commitment),
            **common,
        },
        t2 - 240,
    )
    a.anchor()
    b.anchor()
    ledger.revoke_agent_key(scanner_a.address, sender=account_a)  # e.g. a lost scanner

    # B: out for delivery (anchored), then delivered two minutes ago (not anchored yet).
    travel(w3, HOUR)
    t3 = b.clock.now()
    driver_b.record(b, PARCEL, {"status": "out_for_delivery", "place": "Amsterdam"}, t3 - 1800)
    b.anchor()
    delivered = {
        "status": "delivered",
        "place": "Amsterdam, Prinsengracht 263",
        "confirmation_code": code,
        "pod_photo_sha256": hashlib.sha256(b"photo").hexdigest(),
    }
    driver_b.record(b, PARCEL, delivered, t3 - 120)

    dispute = Dispute(
        w3, ledger, a, b, driver_a, scanner_a, driver_b, account_a, account_b, {}, {}, t3
    )
    dispute.bundle = dispute.fresh_bundle()
    dispute.tampered = tamper_place(dispute.bundle, "B", 2, "Amsterdam, Keizersgracht 1")
    return dispute


def tamper_place(bundle: dict[str, Any], log: str, sequence: int, place: str) -> dict[str, Any]:
    """A copy of ``bundle`` whose event ``sequence`` of log ``log`` shows another place."""
    changed = copy.deepcopy(bundle)
    lg = changed["logs"][ord(log) - ord("A")]
    event = next(e for e in lg["events"] if e["sequence"] == sequence)
    opening = next(f for f in event["revealed"] if f["name"] == "place")
    opening["value"] = place
    return changed


# --- printing -------------------------------------------------------------------------------

_DRIVER = r"""
import { chromium } from 'playwright-core';

const o = JSON.parse(process.env.PARCELPROOF_RENDER);
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
setTimeout(() => { console.error('render: overall timeout'); process.exit(3); }, 90_000).unref();
const problems = [];
const browser = await chromium.launch({ executablePath: o.chromium, args: ARGS, headless: true });
const out = {};
try {
  const context = await browser.newContext({
    viewport: { width: 1000, height: 1300 }, deviceScaleFactor: o.scale,
    locale: 'en-GB', timezoneId: 'UTC', javaScriptEnabled: false,
  });
  const page = await context.newPage();
  page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`));
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('request', (r) => r.url() !== o.url && problems.push(`request: ${r.url()}`));
  await page.goto(o.url);
  out.title = await page.title();
  out.scripts = await page.locator('script').count();
  out.findings = await page.locator('.finding').count();
  out.rows = await page.locator('.timeline tbody tr').count();
  const sheet = await page.locator('.sheet').boundingBox();
  out.overflow = await page.locator('.sheet').evaluate((el) => el.scrollWidth > el.clientWidth);
  if (o.png) {
    // The first A4 sheet: the screen layout has the page's width and margins. Blocks that do
    // not fit above the bottom margin go to page 2 in print (rows and cards are never split,
    // a heading stays with what follows): hide them here the same way.
    const bottom = (297 - 16) / 25.4 * 96;
    await page.locator('.sheet').evaluate((el, limit) => {
      const top = el.getBoundingClientRect().top;
      const blocks = el.querySelectorAll('header > *, h2, p, article, tr, .handoff h3, .log h3');
      for (const b of blocks) {
        if (b.getBoundingClientRect().bottom - top > limit) b.style.visibility = 'hidden';
      }
      for (const h of el.querySelectorAll('h2')) {
        const next = h.nextElementSibling;
        if (next && next.style.visibility === 'hidden') h.style.visibility = 'hidden';
      }
    }, bottom);
    await page.screenshot({
      path: o.png,
      clip: { x: sheet.x, y: sheet.y, width: sheet.width, height: sheet.width * 297 / 210 },
    });
  }
  const pdf = await page.pdf({
    path: o.pdf || undefined, preferCSSPageSize: true, printBackground: true,
  });
  out.pdfBytes = pdf.length;
  out.pdfHeader = pdf.subarray(0, 5).toString('latin1');
  out.pages = (pdf.toString('latin1').match(/\/Type\s*\/Page(?!s)/g) || []).length;
} finally {
  await browser.close();
}
out.problems = problems;
console.log(JSON.stringify(out));
"""


def render(
    html_path: Path,
    *,
    png: Path | None = None,
    pdf: Path | None = None,
    chromium: Path = CHROMIUM,
    scale: float = 2,
) -> dict[str, Any]:
    """Open the report in headless Chromium (JavaScript off), print it to PDF and optionally
    take a PNG of its first A4 page. Returns what the page showed: ``pages``, ``findings``,
    ``rows``, ``scripts``, ``overflow``, ``problems`` (console errors, any request made)."""
    options = {
        "url": html_path.resolve().as_uri(),
        "png": str(png) if png else None,
        "pdf": str(pdf) if pdf else None,
        "chromium": str(chromium),
        "scale": scale,
    }
    done = subprocess.run(
        ["node", "--input-type=module", "-e", _DRIVER],
        cwd=ROOT,  # resolves playwright-core from node_modules
        env={**os.environ, "PARCELPROOF_RENDER": json.dumps(options)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"rendering failed ({done.returncode}): {done.stderr.strip()}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--png", type=Path, default=PNG, help=f"first page (default {PNG})")
    parser.add_argument("--pdf", type=Path, help="also write the printed PDF here")
    parser.add_argument("--html", type=Path, help="also keep the HTML report here")
    parser.add_argument("--rpc", help="JSON-RPC URL of a dev chain (default: embedded)")
    args = parser.parse_args(argv)
    dispute = build_dispute(args.rpc)
    report = build_report(dispute.tampered, dispute.ledger, now=dispute.now)
    with tempfile.TemporaryDirectory() as tmp:
        html_path = args.html or Path(tmp) / "dispute-report.html"
        html_path.write_text(render_html(report), encoding="utf-8")
        args.png.parent.mkdir(parents=True, exist_ok=True)
        shown = render(html_path, png=args.png, pdf=args.pdf)
    print(
        f"{report.verdict}: {report.summary}; {len(report.findings)} findings; "
        f"{shown['pages']} PDF pages; wrote {args.png}"
    )
    if shown["problems"]:
        print("problems:", *shown["problems"], sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
