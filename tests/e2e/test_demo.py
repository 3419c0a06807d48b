"""The `parcelproof demo` command end to end, on the embedded chain and on a real anvil."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from parcelproof.chain.devnet import Anvil
from parcelproof.cli import app
from parcelproof.core.bundle import Check, Report, parse_bundle

runner = CliRunner()


def test_demo_on_the_embedded_chain_exits_zero(tmp_path: Path) -> None:
    out = tmp_path / "bundle.json"
    result = runner.invoke(app, ["demo", "--bundle-out", str(out)])
    assert result.exit_code == 0, result.output
    assert "expectations held" in result.output
    assert "✘" not in result.output
    bundle = parse_bundle(json.loads(out.read_text()))
    assert len(bundle.logs) == 2  # the handoff put the parcel on both couriers' logs
    assert "Camille" not in out.read_text()


def test_consortium_demo_serves_two_nodes_and_one_bundle(tmp_path: Path) -> None:
    out = tmp_path / "journey.json"
    result = runner.invoke(app, ["demo", "--consortium", "--bundle-out", str(out)])
    assert result.exit_code == 0, result.output
    assert "All 4 expectations held" in result.output and "✘" not in result.output
    bundle = parse_bundle(json.loads(out.read_text()))
    assert len(bundle.logs) == 2
    assert "Eva" not in out.read_text()  # the recipient's name stays in the nodes


@pytest.mark.anvil
def test_consortium_demo_on_anvil(anvil_node: Anvil) -> None:
    result = runner.invoke(app, ["demo", "--consortium", "--rpc", anvil_node.url])
    assert result.exit_code == 0, result.output


@pytest.mark.anvil
def test_demo_on_anvil_exits_zero(anvil_node: Anvil) -> None:
    result = runner.invoke(app, ["demo", "--rpc", anvil_node.url])
    assert result.exit_code == 0, result.output
    assert f"chain id {anvil_node.chain_id}" in result.output


def test_demo_fails_when_a_tamper_goes_unnoticed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A verifier that accepts everything must turn the demo's exit code to 1."""

    def blind(bundle: object, ledger: object) -> Report:
        return Report([Check("everything", "bundle", True)])

    monkeypatch.setattr("parcelproof.demo.verify_bundle", blind)
    result = runner.invoke(app, ["demo"])
    assert result.exit_code == 1, result.output
    assert "✘" in result.output
    assert "expectations failed" in result.output


def test_demo_against_an_unreachable_node_is_a_clear_error() -> None:
    result = runner.invoke(app, ["demo", "--rpc", "http://127.0.0.1:9"])
    assert result.exit_code == 2
    assert "error:" in result.output
    assert "Traceback" not in result.output


def test_demo_needs_no_node_at_run_time(tmp_path: Path) -> None:
    """The product reads the committed artifacts: with no `node` on PATH the demo still runs."""
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARCELPROOF_")}
    env["PATH"] = str(empty)
    assert shutil.which("node", path=env["PATH"]) is None
    proc = subprocess.run(
        [sys.executable, "-m", "parcelproof", "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "expectations held" in proc.stdout
