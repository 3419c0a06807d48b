"""Slither on contracts/, offline, in its own venv; fails on any finding not triaged below.

Slither compiles through crytic-compile in standard-JSON mode with the pinned npm ``solc``
(``scripts/solc-shim.js``), so nothing is downloaded but Slither itself (from PyPI, once, into
``.venv/slither``). Each accepted finding is keyed by detector and function, not by line, so
edits elsewhere in the contract do not invalidate the triage; the reasons are in
docs/security-checks.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("SLITHER_VENV", ROOT / ".venv" / "slither"))
REQUIREMENTS = ("slither-analyzer==0.11.6", "crytic-compile==0.4.2")
SLITHER_ARGS = (
    "contracts",
    "--solc",
    "scripts/solc-shim.js",
    "--solc-standard-json",
    "--solc-remaps",
    "@openzeppelin/=node_modules/@openzeppelin/",
    "--filter-paths",
    "node_modules",
    "--fail-none",
    "--disable-color",
)

# (detector, "Contract.signature") -> why it is accepted (docs/security-checks.md has the detail).
ACCEPTED: dict[tuple[str, str], str] = {
    (
        "incorrect-equality",
        "ParcelLedger.agentKey(address)",
    ): "existence check on a never-zero courier id, not a balance or time equality",
    (
        "incorrect-equality",
        "ParcelLedger.dispute(bytes32)",
    ): "existence check: openedAt is block.timestamp (never 0) once a dispute exists",
    (
        "timestamp",
        "ParcelLedger.agentKey(address)",
    ): "same existence check; no decision depends on the current block time",
    (
        "timestamp",
        "ParcelLedger.dispute(bytes32)",
    ): "same existence check; no decision depends on the current block time",
    (
        "assembly",
        "RFC9162._hashNode(bytes32,bytes32)",
    ): "reviewed memory-safe SHA-256 precompile call (gas); the only assembly in contracts/",
    (
        "naming-convention",
        "IParcelLedger.RESOLVER_ROLE()",
    ): "role constant getter, named like OpenZeppelin's DEFAULT_ADMIN_ROLE",
    (
        "naming-convention",
        "IParcelLedger.MAX_SUSPENSIONS()",
    ): "constant getter (suspension cap), named like RESOLVER_ROLE and DEFAULT_ADMIN_ROLE",
}


def ensure_venv() -> Path:
    """The venv's slither executable, creating the venv or updating the pins only if needed."""
    slither = VENV / "bin" / "slither"
    stamp = VENV / ".requirements"
    wanted = "\n".join(REQUIREMENTS)
    if slither.exists() and stamp.exists() and stamp.read_text() == wanted:
        return slither
    print(f"slither: installing {', '.join(REQUIREMENTS)} into {VENV}", flush=True)
    if not (VENV / "bin" / "python").exists():
        venv.create(VENV, with_pip=True)
    subprocess.run(
        [str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", *REQUIREMENTS],
        check=True,
    )
    stamp.write_text(wanted)
    return slither


def finding_key(result: dict[str, object]) -> tuple[str, str]:
    """(detector, "Contract.signature" or element name) of a Slither JSON result."""
    check = str(result["check"])
    elements = result.get("elements")
    if not isinstance(elements, list) or not elements:
        return check, "?"
    first = elements[0]
    fields = first.get("type_specific_fields", {})
    parent = fields.get("parent", {}).get("name")
    name = fields.get("signature") or first.get("name", "?")
    return check, f"{parent}.{name}" if parent else str(name)


def main() -> int:
    slither = ensure_venv()
    env = {**os.environ, "PATH": f"{VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "slither.json"
        run = subprocess.run(
            [str(slither), *SLITHER_ARGS, "--json", str(report)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if not report.exists():
            sys.stderr.write(run.stdout + run.stderr)
            print("slither: no report (compilation or analysis failed)", file=sys.stderr)
            return 1
        output = json.loads(report.read_text())
    if not output.get("success"):
        sys.stderr.write(run.stderr)
        print(f"slither: failed: {output.get('error')}", file=sys.stderr)
        return 1
    results = output.get("results", {}).get("detectors", [])
    seen: set[tuple[str, str]] = set()
    new = 0
    for result in results:
        key = finding_key(result)
        seen.add(key)
        reason = ACCEPTED.get(key)
        first_line = str(result.get("description", "")).splitlines()[0]
        if reason is None:
            new += 1
            print(f"NEW      [{result.get('impact')}] {key[0]}: {first_line}")
        else:
            print(f"accepted [{result.get('impact')}] {key[0]}: {key[1]}: {reason}")
    for key in sorted(ACCEPTED.keys() - seen):
        print(f"note: triaged finding no longer reported, remove it from ACCEPTED: {key}")
    print(f"slither: {len(results)} finding(s), {new} not triaged")
    if new:
        print("Fix them, or triage them in scripts/slither.py and docs/security-checks.md.")
    return 1 if new else 0


if __name__ == "__main__":
    sys.exit(main())
