"""Every `parcelproof …` command written in docs/operator-guide.md exists, with its options."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import typer

from parcelproof.cli import app

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "operator-guide.md"
_INVOCATION = re.compile(r"(?:^|[\s;&|(`])(?:\.venv/bin/)?parcelproof((?:\s+[^\s`;&|)]+)*)")


def command_lines(markdown: str) -> list[str]:
    """The `parcelproof` invocations of the code blocks (continuations joined, comments cut)
    and of inline code spans."""
    found: list[str] = []
    for block in re.findall(r"```(?:sh|bash)\n(.*?)```", markdown, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            code = line.split(" #", 1)[0]
            found += [m.group(1) for m in _INVOCATION.finditer(code)]
    prose = re.sub(r"```.*?```", "", markdown, flags=re.S)
    for span in re.findall(r"`([^`\n]+)`", prose):
        if span.startswith(("parcelproof ", ".venv/bin/parcelproof ")):
            found += [m.group(1) for m in _INVOCATION.finditer(span)]
    return [f.strip() for f in found if f.strip()]


def check(invocation: str) -> str | None:
    """None when ``invocation`` (the words after `parcelproof`) names a real command and only
    its options; else what is wrong."""
    words = shlex.split(invocation.replace("$(", "").replace(")", ""))
    command: Any = typer.main.get_command(app)  # typer's own (vendored) click classes
    path = ["parcelproof"]
    while hasattr(command, "commands") and words and not words[0].startswith("-"):
        if words[0].startswith("<"):  # a placeholder such as <command>
            return None
        sub = command.commands.get(words[0])
        if sub is None:
            return f"{' '.join(path)} has no command {words[0]!r}"
        path.append(words.pop(0))
        command = sub
    if hasattr(command, "commands"):
        return f"{' '.join(path)} needs a command"
    options = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)} | {"--help"}
    for word in words:
        if word.startswith("--") and word.split("=", 1)[0] not in options:
            return f"{' '.join(path)} has no option {word.split('=', 1)[0]}"
    return None


def test_every_command_in_the_guide_is_real() -> None:
    lines = command_lines(GUIDE.read_text())
    assert len(lines) > 30  # the guide is full of commands: the extraction works
    for needed in ("db backup", "db restore", "db upgrade", "keys rotate", "monitor"):
        assert any(line.startswith(needed) for line in lines), needed
    problems = [f"`parcelproof {line}`: {p}" for line in lines if (p := check(line)) is not None]
    assert not problems, "\n".join(problems)


def test_the_checker_catches_made_up_commands_and_options() -> None:
    assert check("db backup --out x.dump") is None
    assert check("db backups --out x.dump") == "parcelproof db has no command 'backups'"
    assert check("db restore x.dump --yes --wipe") == "parcelproof db restore has no option --wipe"
    assert check("keys") == "parcelproof keys needs a command"
