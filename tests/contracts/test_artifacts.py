"""Committed artifacts match a rebuild with the pinned compiler; the solc shim is faithful."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from parcelproof.chain import compile as solc
from parcelproof.core.errors import CompilerError

needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")


@pytest.fixture(scope="module")
def rebuilt() -> dict[str, dict[str, Any]]:
    return solc.build_artifacts()


@needs_node
def test_committed_artifacts_are_not_stale(rebuilt: dict[str, dict[str, Any]]) -> None:
    for name, fresh in rebuilt.items():
        committed = json.loads((solc.artifacts_dir() / f"{name}.json").read_text())
        hint = f"{name}.json is stale: run `parcelproof contracts build` and commit it"
        assert committed["abi"] == fresh["abi"], hint
        assert committed["bytecode"] == fresh["bytecode"], hint
        assert committed["deployedBytecode"] == fresh["deployedBytecode"], hint
        assert committed["sources"] == fresh["sources"], hint
        assert committed["compiler"] == fresh["compiler"], hint


@needs_node
def test_committed_artifacts_are_byte_for_byte_deterministic(
    rebuilt: dict[str, dict[str, Any]],
) -> None:
    for name, fresh in rebuilt.items():
        text = (solc.artifacts_dir() / f"{name}.json").read_text()
        assert text == solc.dump_artifact(fresh)
        assert text.endswith("}\n") and '\n  "abi": [' in text


@needs_node
def test_check_artifacts_reports_nothing_stale() -> None:
    assert solc.check_artifacts() == []


@needs_node
def test_check_artifacts_names_a_stale_artifact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    contracts = tmp_path / "contracts"
    shutil.copytree(solc.contracts_dir(), contracts)
    (tmp_path / "node_modules").symlink_to(solc.node_modules_dir())
    (tmp_path / "scripts").symlink_to(solc.contracts_dir().parent / "scripts")
    source = contracts / "ParcelLedger.sol"
    source.write_text(source.read_text().replace('RESOLVER_ROLE")', 'RESOLVER")'))
    monkeypatch.setenv(solc.CONTRACTS_DIR_ENV, str(contracts))
    assert solc.check_artifacts() == ["ParcelLedger", "IParcelLedger"]
    solc.write_artifacts()
    assert solc.check_artifacts() == []


def test_artifact_pins_the_toolchain_and_hashes_every_source() -> None:
    artifact = solc.load_artifact()
    assert artifact.compiler_version.startswith(f"{solc.SOLC_VERSION}+commit.")
    assert artifact.evm_version == solc.EVM_VERSION == "cancun"
    assert artifact.optimizer == {"enabled": True, "runs": solc.OPTIMIZER_RUNS}
    assert set(artifact.source_hashes) >= {
        "contracts/IParcelLedger.sol",
        "contracts/ParcelLedger.sol",
        "contracts/RFC9162.sol",
        "@openzeppelin/contracts/access/AccessControl.sol",
        "@openzeppelin/contracts/access/IAccessControl.sol",
    }
    root = solc.contracts_dir().parent
    for unit, digest in artifact.source_hashes.items():
        path = root / unit if unit.startswith("contracts/") else root / "node_modules" / unit
        if path.exists():  # node_modules may be absent where only the artifact is used
            assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, unit
    assert artifact.bytecode.startswith("0x60") and artifact.deployed_bytecode.startswith("0x60")


def test_load_artifact_needs_no_node(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    artifact = solc.load_artifact("ParcelLedger")
    assert artifact.name == "ParcelLedger"
    assert any(e.get("name") == "anchorCheckpoint" for e in artifact.abi)
    assert solc.load_artifact("IParcelLedger").bytecode == "0x"


def test_load_artifact_reports_a_missing_artifact() -> None:
    with pytest.raises(CompilerError, match="parcelproof contracts build"):
        solc.load_artifact("NoSuchContract")


@needs_node
def test_shim_prints_a_version_matching_the_pin() -> None:
    out = subprocess.run(
        [str(solc.solc_binary()), "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert f"Version: {solc.SOLC_VERSION}+commit." in out
    assert solc.compiler_version().startswith(f"{solc.SOLC_VERSION}+commit.")


@needs_node
def test_shim_output_over_a_pipe_is_not_truncated() -> None:
    """Everything solc can output for ParcelLedger (well over 64 KiB) arrives intact."""
    request = solc.standard_json_input(outputs=["*"])
    request["settings"]["outputSelection"]["*"][""] = ["ast"]
    proc = subprocess.run(
        [str(solc.solc_binary()), "--standard-json"],
        input=json.dumps(request).encode(),
        capture_output=True,
        check=True,
    )
    assert len(proc.stdout) > 64 * 1024
    output = json.loads(proc.stdout)
    assert not [e for e in output.get("errors", []) if e["severity"] == "error"]
    ledger = output["contracts"]["contracts/ParcelLedger.sol"]["ParcelLedger"]
    assert ledger["evm"]["deployedBytecode"]["object"]
    assert ledger["metadata"].endswith("}")


@needs_node
def test_compilation_errors_surface_as_compiler_error() -> None:
    broken = {"contracts/Broken.sol": "pragma solidity 0.8.30; contract Broken { uint x = ; }"}
    with pytest.raises(CompilerError, match=r"compilation failed: .*ParserError"):
        solc.run_compiler(solc.standard_json_input(broken))


def test_missing_node_is_a_clear_compiler_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(CompilerError, match=r"Node\.js is not on PATH"):
        solc.build_artifacts()


def test_missing_compiler_override_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(solc.SOLC_ENV, "/nonexistent/solc")
    with pytest.raises(CompilerError, match="does not exist"):
        solc.solc_binary()


def test_contracts_dir_override_must_hold_the_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(solc.CONTRACTS_DIR_ENV, str(tmp_path))
    with pytest.raises(CompilerError, match=r"holds no ParcelLedger\.sol"):
        solc.contracts_dir()


def test_collect_sources_follows_imports_transitively() -> None:
    sources = solc.collect_sources()
    assert list(sources) == sorted(sources)
    assert "@openzeppelin/contracts/utils/introspection/IERC165.sol" in sources  # 3 hops away
