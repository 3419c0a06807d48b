"""docs/threat-model.md maps every threat to a test that exists (or to a CI check)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "threat-model.md"
REF = re.compile(r"`(tests/[\w/]+\.py)::(test_\w+)`")
ROW = re.compile(r"^\| (C\d+-\d+) \| ([STRIDE, ]+) \|(.*)$", re.MULTILINE)


def dangling(text: str) -> list[str]:
    """The ``path::test`` references in ``text`` whose file or test function is missing."""
    return [
        f"{path}::{name}"
        for path, name in REF.findall(text)
        if not (ROOT / path).is_file()
        or not re.search(rf"^(async )?def {name}\(", (ROOT / path).read_text(), re.MULTILINE)
    ]


def test_every_named_test_exists() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert len(REF.findall(text)) > 80
    missing = dangling(text)
    assert not missing, f"threat model names tests that do not exist: {missing}"


def test_every_threat_has_a_test_or_a_ci_check_and_stride_is_covered() -> None:
    rows = ROW.findall(DOC.read_text(encoding="utf-8"))
    assert len(rows) > 50
    untested = [tid for tid, _, rest in rows if not REF.search(rest) and "CI: `make" not in rest]
    assert not untested, f"threats without a test: {untested}"
    letters = {letter for _, stride, _ in rows for letter in stride if letter.isalpha()}
    assert letters == set("STRIDE")
    assert len({tid for tid, _, _ in rows}) == len(rows), "threat ids must be unique"


def test_the_checker_catches_dangling_references() -> None:
    assert dangling("`tests/unit/test_threat_model.py::test_that_does_not_exist`")
    assert dangling("`tests/unit/no_such_file.py::test_every_named_test_exists`")
    assert not dangling("`tests/unit/test_threat_model.py::test_every_named_test_exists`")
