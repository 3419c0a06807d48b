"""`parcelproof devnet up|down|status|reset`: a persistent local chain with its ledger deployed
once, remembered across restarts, and refused when its state is lost."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from parcelproof.chain import devnet
from parcelproof.chain.localnet import LocalDevnet
from parcelproof.cli import app
from parcelproof.settings import load_settings
from tests.faults.pgserver import free_port

pytestmark = pytest.mark.anvil
runner = CliRunner()


def _run(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, ["devnet", *args], env={"PARCELPROOF_ENVIRONMENT": "development"})
    assert result.exit_code == code, result.output
    return result.output


def test_up_deploys_once_then_remembers_and_down_keeps_the_chain(tmp_path: Path) -> None:
    data, port = tmp_path / "data", str(free_port())
    try:
        assert "devnet: stopped" in _run("status", "--data-dir", str(data), code=3)
        first = _run("up", "--data-dir", str(data), "--port", port)
        assert "running (pid" in first and f"127.0.0.1:{port}" in first
        assert "deployed ParcelLedger at" in first
        env_file = data / "node.env"
        assert env_file.stat().st_mode & 0o777 == 0o600
        settings = load_settings(env_file)
        assert settings.rpc_url == f"http://127.0.0.1:{port}"
        ledger = settings.ledger_address or ""

        again = _run("up", "--data-dir", str(data), "--port", port)  # already running
        assert f"ledger {ledger} (deployed earlier" in again
        status = _run("status", "--data-dir", str(data))
        assert f"ledger {ledger}: deployed" in status

        w3 = devnet.connect(f"http://127.0.0.1:{port}")
        head = w3.eth.block_number
        assert "devnet: stopped" in _run("down", "--data-dir", str(data))
        assert "was not running" in _run("down", "--data-dir", str(data))
        assert (data / "devnet" / "anvil-state.json").stat().st_size > 0
        assert "chain state kept" in _run("status", "--data-dir", str(data), code=3)

        resumed = _run("up", "--data-dir", str(data), "--port", port)
        assert f"ledger {ledger} (deployed earlier" in resumed
        w3 = devnet.connect(f"http://127.0.0.1:{port}")
        assert w3.eth.block_number >= head
        assert len(w3.eth.get_code(w3.to_checksum_address(ledger))) > 0
    finally:
        LocalDevnet(data / "devnet").down()


def test_lost_state_is_refused_and_reset_starts_over(tmp_path: Path) -> None:
    data, port = tmp_path / "data", str(free_port())
    try:
        _run("up", "--data-dir", str(data), "--port", port)
        _run("down", "--data-dir", str(data))
        (data / "devnet" / "anvil-state.json").unlink()  # the chain is gone, node.env is not
        lost = runner.invoke(app, ["devnet", "up", "--data-dir", str(data), "--port", port])
        assert lost.exit_code == 2
        assert "its chain state was lost" in lost.output and "devnet reset --yes" in lost.output
        refused = runner.invoke(app, ["devnet", "reset", "--data-dir", str(data)])
        assert refused.exit_code == 2 and "pass --yes" in refused.output
        assert "holds no chain" in _run("reset", "--data-dir", str(data), "--yes")
        assert not (data / "node.env").exists() and not (data / "devnet").exists()
        assert "deployed ParcelLedger" in _run("up", "--data-dir", str(data), "--port", port)
    finally:
        LocalDevnet(data / "devnet").down()


def test_a_taken_port_is_one_error_line(tmp_path: Path) -> None:
    with devnet.Anvil() as other:
        port = other.port
        result = runner.invoke(
            app, ["devnet", "up", "--data-dir", str(tmp_path), "--port", str(port)]
        )
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and "Traceback" not in result.output
    assert f"127.0.0.1:{port} is taken" in result.output
