"""`parcelproof verify` and `parcelproof bundle redact`: bundle + chain only; exit codes 0/1/2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from parcelproof.chain.devnet import Anvil
from parcelproof.cli import app
from tests.unit.test_bundle_vectors import VECTORS

runner = CliRunner()


def _vector_bundle(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(json.loads((VECTORS / f"{name}.json").read_text())["bundle"]))
    return path


def test_offline_says_plainly_what_it_did_not_check(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["verify", str(_vector_bundle(tmp_path, "valid-handoff-delivery")), "--offline"]
    )
    assert result.exit_code == 0, result.output
    assert "VALID AS FAR AS CHECKED" in result.output
    assert "NOT checked" in result.output and "checkpoint" in result.output


def test_offline_invalid_bundle_names_the_failing_check(tmp_path: Path) -> None:
    path = _vector_bundle(tmp_path, "invalid-changed-value")
    result = runner.invoke(app, ["verify", str(path), "--offline", "--json"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["ok"] is False and report["complete"] is False
    assert {c["name"] for c in report["checks"] if not c["ok"]} == {"commitment"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        (b"\xff\xfe not json", "is not JSON"),
        (b'{"format": "parcelproof-bundle", "version": 1}', "lacks"),
    ],
)
def test_unusable_input_exits_2(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "bundle.json"
    if content is not None:
        path.write_bytes(content)
    result = runner.invoke(app, ["verify", str(path), "--offline"])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())  # rich may wrap long lines
    assert "Traceback" not in result.output


def test_needs_rpc_or_offline(tmp_path: Path) -> None:
    path = _vector_bundle(tmp_path, "valid-handoff-delivery")
    result = runner.invoke(app, ["verify", str(path)], env={"PARCELPROOF_RPC_URL": ""})
    assert result.exit_code == 2 and "--offline" in result.output


@pytest.mark.anvil
def test_verify_and_redact_against_anvil(anvil_node: Anvil, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.json"
    demo = runner.invoke(app, ["demo", "--rpc", anvil_node.url, "--bundle-out", str(bundle)])
    assert demo.exit_code == 0, demo.output
    ok = runner.invoke(app, ["verify", str(bundle), "--rpc", anvil_node.url])
    assert ok.exit_code == 0, ok.output
    assert "VALID: all" in ok.output

    smaller = tmp_path / "delivered-only.json"
    redacted = runner.invoke(
        app,
        [
            "bundle",
            "redact",
            str(bundle),
            "-o",
            str(smaller),
            "--reveal",
            "status,time",
            "--only-status",
            "delivered",
        ],
    )
    assert redacted.exit_code == 0, redacted.output
    text = smaller.read_text()
    assert "Lyon" not in text and '"delivered"' in text
    assert runner.invoke(app, ["verify", str(smaller), "--rpc", anvil_node.url]).exit_code == 0

    tampered = json.loads(bundle.read_text())
    tampered["logs"][0]["events"][0]["inclusionProof"][0] = "0x" + "00" * 32
    bad = tmp_path / "tampered.json"
    bad.write_text(json.dumps(tampered))
    result = runner.invoke(app, ["verify", str(bad), "--rpc", anvil_node.url, "--json"])
    assert result.exit_code == 1
    assert "inclusion" in {c["name"] for c in json.loads(result.output)["checks"] if not c["ok"]}

    other_chain = json.loads(bundle.read_text())
    other_chain["chain"]["chainId"] = 1
    wrong = tmp_path / "other-chain.json"
    wrong.write_text(json.dumps(other_chain))
    result = runner.invoke(app, ["verify", str(wrong), "--rpc", anvil_node.url])
    assert result.exit_code == 2 and "chain 1" in result.output


def test_json_nesting_bomb_is_unusable_input(tmp_path: Path) -> None:
    path = tmp_path / "bomb.json"
    path.write_bytes(b"[" * 100_000 + b"]" * 100_000)
    result = runner.invoke(app, ["verify", str(path), "--offline"])
    assert result.exit_code == 2
    assert "deeper than 64" in " ".join(result.output.split())
