"""core/ stays pure: no web3, SQLAlchemy, FastAPI, network or file I/O imports or calls."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "backend" / "parcelproof" / "core"
BANNED_MODULES = {
    "web3",
    "sqlalchemy",
    "fastapi",
    "starlette",
    "httpx",
    "requests",
    "urllib",
    "socket",
    "subprocess",
    "os",
    "pathlib",
    "shutil",
    "io",
    "sqlite3",
    "solcx",
    "eth_tester",
    "asyncio",
}
BANNED_CALLS = {"open", "exec", "eval", "__import__", "print", "input"}


def _modules() -> list[Path]:
    files = sorted(CORE.glob("*.py"))
    assert files
    return files


def _violations(source: str) -> list[str]:
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        found += [f"imports {n}" for n in names if n.split(".")[0] in BANNED_MODULES]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in BANNED_CALLS:
                found.append(f"calls {node.func.id}()")
    return found


@pytest.mark.parametrize("path", _modules(), ids=lambda p: p.name)
def test_core_module_imports_nothing_impure(path: Path) -> None:
    assert _violations(path.read_text()) == []


@pytest.mark.parametrize("path", _modules(), ids=lambda p: p.name)
def test_core_module_has_a_docstring(path: Path) -> None:
    doc = ast.get_docstring(ast.parse(path.read_text()))
    assert doc, f"{path.name} lacks a module docstring"


def test_the_guard_catches_impure_code() -> None:
    source = "import web3\nfrom sqlalchemy.orm import Session\nimport os.path\nopen('x')\n"
    assert _violations(source) == [
        "imports web3",
        "imports sqlalchemy.orm",
        "imports os.path",
        "calls open()",
    ]
