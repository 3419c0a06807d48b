"""Compiling contracts/ with the pinned solc (via scripts/solc-shim.js) into committed artifacts.

Build time needs Node and ``node_modules`` (npm ``solc`` and ``@openzeppelin/contracts``); run
time does not: :func:`load_artifact` only reads the committed JSON in ``contracts/artifacts``.
Every imported file is put into the Standard-JSON ``sources`` by this module (no import
callback), so the artifact can list a SHA-256 of exactly what went into the compiler.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parcelproof.core.errors import CompilerError

SOLC_VERSION = "0.8.30"
EVM_VERSION = "cancun"
OPTIMIZER_ENABLED = True
OPTIMIZER_RUNS = 200

#: Contracts whose artifacts are built and committed.
ARTIFACT_NAMES: tuple[str, ...] = ("ParcelLedger", "IParcelLedger")
#: Source files of ours, relative to the contracts directory.
ROOT_SOURCES: tuple[str, ...] = ("IParcelLedger.sol", "ParcelLedger.sol", "RFC9162.sol")

CONTRACTS_DIR_ENV = "PARCELPROOF_CONTRACTS_DIR"
SOLC_ENV = "PARCELPROOF_SOLC"

_IMPORT = re.compile(r"""^\s*import\s+(?:[^"';]*?\s+from\s+)?["']([^"']+)["']""", re.MULTILINE)
_DEFAULT_OUTPUTS = ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]


@dataclass(frozen=True)
class Artifact:
    """A compiled contract as committed in ``contracts/artifacts/<name>.json``."""

    name: str
    source_name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str
    compiler_version: str
    evm_version: str
    optimizer: dict[str, Any]
    source_hashes: dict[str, str]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Artifact:
        """Build from the committed JSON layout."""
        try:
            compiler = data["compiler"]
            return cls(
                name=data["contractName"],
                source_name=data["sourceName"],
                abi=data["abi"],
                bytecode=data["bytecode"],
                deployed_bytecode=data["deployedBytecode"],
                compiler_version=compiler["version"],
                evm_version=compiler["evmVersion"],
                optimizer=compiler["optimizer"],
                source_hashes=data["sources"],
            )
        except (KeyError, TypeError) as e:
            raise CompilerError(f"malformed artifact: missing {e}") from e


# --- locations ------------------------------------------------------------------------------


def contracts_dir() -> Path:
    """The ``contracts`` directory: ``$PARCELPROOF_CONTRACTS_DIR`` or the one next to backend/."""
    override = os.environ.get(CONTRACTS_DIR_ENV)
    if override:
        path = Path(override).expanduser().resolve()
        if not (path / "ParcelLedger.sol").is_file():
            raise CompilerError(f"{CONTRACTS_DIR_ENV}={override} holds no ParcelLedger.sol")
        return path
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "contracts"
        if (candidate / "ParcelLedger.sol").is_file():
            return candidate
    raise CompilerError(
        f"cannot find the contracts directory next to backend/; set {CONTRACTS_DIR_ENV}"
    )


def artifacts_dir() -> Path:
    """Where committed artifacts live: ``contracts/artifacts``."""
    return contracts_dir() / "artifacts"


def node_modules_dir() -> Path:
    """The ``node_modules`` directory of the repository (sibling of ``contracts``)."""
    return contracts_dir().parent / "node_modules"


def solc_binary() -> Path:
    """The compiler executable: ``$PARCELPROOF_SOLC`` or ``scripts/solc-shim.js``."""
    override = os.environ.get(SOLC_ENV)
    if override:
        path = Path(override)
        if not path.is_file():
            raise CompilerError(f"{SOLC_ENV}={override} does not exist")
        return path
    shim = contracts_dir().parent / "scripts" / "solc-shim.js"
    if not shim.is_file():
        raise CompilerError(f"solc shim not found at {shim}")
    if shutil.which("node") is None:
        raise CompilerError("Node.js is not on PATH; it is needed to compile the contracts")
    if not (node_modules_dir() / "solc" / "package.json").is_file():
        raise CompilerError(f"npm package solc missing under {node_modules_dir()}: run `npm ci`")
    return shim


# --- compilation ----------------------------------------------------------------------------


def _resolve(unit: str) -> Path:
    if unit.startswith("contracts/"):
        return contracts_dir() / unit.removeprefix("contracts/")
    return node_modules_dir() / unit


def collect_sources() -> dict[str, str]:
    """Map every source unit name (ours as ``contracts/X.sol``, npm ones by package path) to its
    text, following imports transitively. Sorted by unit name."""
    sources: dict[str, str] = {}
    pending = [f"contracts/{name}" for name in ROOT_SOURCES]
    while pending:
        unit = pending.pop()
        if unit in sources:
            continue
        path = _resolve(unit)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise CompilerError(f"cannot read source {unit} ({path}): {e.strerror}") from e
        sources[unit] = text
        for target in _IMPORT.findall(text):
            if target.startswith("."):
                target = posixpath.normpath(posixpath.join(posixpath.dirname(unit), target))
            pending.append(target)
    return dict(sorted(sources.items()))


def source_hashes(sources: dict[str, str]) -> dict[str, str]:
    """SHA-256 (hex) of each source text as UTF-8."""
    return {unit: hashlib.sha256(text.encode()).hexdigest() for unit, text in sources.items()}


def optimizer_settings() -> dict[str, Any]:
    """The pinned optimizer settings."""
    return {"enabled": OPTIMIZER_ENABLED, "runs": OPTIMIZER_RUNS}


def standard_json_input(
    sources: dict[str, str] | None = None, outputs: list[str] | None = None
) -> dict[str, Any]:
    """Standard-JSON compiler input for all sources with the pinned settings."""
    sources = collect_sources() if sources is None else sources
    return {
        "language": "Solidity",
        "sources": {unit: {"content": text} for unit, text in sources.items()},
        "settings": {
            "evmVersion": EVM_VERSION,
            "optimizer": optimizer_settings(),
            "outputSelection": {"*": {"*": outputs or _DEFAULT_OUTPUTS}},
        },
    }


def compiler_version(binary: Path | None = None) -> str:
    """Full version of the compiler, e.g. ``0.8.30+commit.73712a01``; checks the pin."""
    import solcx.wrapper
    from solcx.exceptions import SolcError

    binary = solc_binary() if binary is None else binary
    try:
        version = str(solcx.wrapper.get_version_str_from_solc_binary(binary))
    except (OSError, subprocess.SubprocessError, SolcError, ValueError) as e:
        raise CompilerError(f"cannot run {binary} --version: {e}") from e
    if version.split("+", 1)[0] != SOLC_VERSION:
        raise CompilerError(f"{binary} is solc {version}, the pin is {SOLC_VERSION}")
    return version


def run_compiler(input_data: dict[str, Any], binary: Path | None = None) -> dict[str, Any]:
    """Run the compiler on Standard-JSON input; raise :class:`CompilerError` on any error."""
    import solcx
    from solcx.exceptions import SolcError

    binary = solc_binary() if binary is None else binary
    try:
        output: dict[str, Any] = solcx.compile_standard(input_data, solc_binary=binary)
    except SolcError as e:
        message = getattr(e, "message", None) or str(e)
        raise CompilerError(f"compilation failed: {message}") from e
    except (OSError, subprocess.SubprocessError, ValueError) as e:
        # Node missing, shim not executable, or unreadable/truncated JSON on stdout.
        raise CompilerError(f"cannot run the compiler {binary}: {e}") from e
    return output


def build_artifacts() -> dict[str, dict[str, Any]]:
    """Compile everything with the pinned compiler; return artifact JSON by contract name."""
    binary = solc_binary()
    version = compiler_version(binary)
    sources = collect_sources()
    hashes = source_hashes(sources)
    output = run_compiler(standard_json_input(sources), binary)
    contracts: dict[str, dict[str, Any]] = output.get("contracts", {})
    artifacts: dict[str, dict[str, Any]] = {}
    for name in ARTIFACT_NAMES:
        unit = f"contracts/{name}.sol"
        try:
            compiled = contracts[unit][name]
        except KeyError as e:
            raise CompilerError(f"compiler output has no {unit}:{name}") from e
        artifacts[name] = {
            "contractName": name,
            "sourceName": unit,
            "abi": compiled["abi"],
            "bytecode": _hex(compiled["evm"]["bytecode"]["object"]),
            "deployedBytecode": _hex(compiled["evm"]["deployedBytecode"]["object"]),
            "compiler": {
                "version": version,
                "evmVersion": EVM_VERSION,
                "optimizer": optimizer_settings(),
            },
            "sources": hashes,
        }
    return artifacts


def dump_artifact(data: dict[str, Any]) -> str:
    """Deterministic text of an artifact: sorted keys, indent 2, trailing newline."""
    return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=True) + "\n"


def write_artifacts() -> list[Path]:
    """Rebuild and write ``contracts/artifacts/<Name>.json``; return the paths written."""
    target = artifacts_dir()
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in build_artifacts().items():
        path = target / f"{name}.json"
        path.write_text(dump_artifact(data), encoding="utf-8")
        written.append(path)
    return written


def check_artifacts() -> list[str]:
    """Rebuild in memory; return the names whose committed artifact is missing or stale
    (different ABI, bytecode, deployed bytecode, source hashes or compiler settings)."""
    stale = []
    for name, fresh in build_artifacts().items():
        path = artifacts_dir() / f"{name}.json"
        try:
            committed = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            stale.append(name)
            continue
        keys = ("abi", "bytecode", "deployedBytecode", "sources", "compiler")
        if any(committed.get(key) != fresh[key] for key in keys):
            stale.append(name)
    return stale


def load_artifact(name: str = "ParcelLedger") -> Artifact:
    """Read a committed artifact (no Node needed)."""
    path = artifacts_dir() / f"{name}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise CompilerError(f"artifact {path} is missing: run `parcelproof contracts build`") from e
    except ValueError as e:
        raise CompilerError(f"artifact {path} is not valid JSON: {e}") from e
    return Artifact.from_json(data)


def _hex(code: str) -> str:
    return code if code.startswith("0x") else "0x" + code
