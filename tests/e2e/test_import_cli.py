"""`parcelproof import` against a real node over HTTP: the summary and exit codes, the rejects
file, bad input, a node that is down, the progress bar on a terminal, and shell completion."""

from __future__ import annotations

import json
import os
import pty
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from parcelproof.api.app import create_app
from parcelproof.api.deps import NodeServices
from parcelproof.chain import devnet
from parcelproof.cli import app
from parcelproof.service import credentials
from parcelproof.store.db import make_engine, session_factory, sqlite_url, upgrade
from parcelproof.store.sql import SqlStore
from tests.conftest import Courier, make_courier
from tests.support.serving import serving

PARCELS = ("PP200000001NL", "PP200000002NL")
runner = CliRunner()
#: The installed entry point: completion keys on the program's name, ``parcelproof``.
SCRIPT = Path(sys.executable).parent / "parcelproof"


@dataclass
class Node:
    url: str
    token: str
    agent_key: str
    courier: Courier

    def env(self) -> dict[str, str]:
        return {
            "PARCELPROOF_API_URL": self.url,
            "PARCELPROOF_API_TOKEN": self.token,
            "PARCELPROOF_AGENT_KEY": self.agent_key,
        }

    def events(self, tracking: str) -> int:
        return self.courier.node.event_context(tracking).sequence


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    """A courier node (SQLite, the embedded chain) served by uvicorn on 127.0.0.1."""
    engine = make_engine(sqlite_url(tmp_path / "node.db"))
    upgrade(engine)
    sessions = session_factory(engine)
    c = make_courier(devnet.connect(None), lambda log: SqlStore(sessions, log), "importer")
    store = c.node.store
    assert isinstance(store, SqlStore)
    for t in PARCELS:
        c.node.create_shipment(t, {}, "1012 AB")
    token = credentials.issue(store, "importer", credentials.SCOPES)
    services = NodeServices(node=c.node, ledger=c.ledger, clients=store)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    try:
        with serving(create_app(services), sock):
            key = "0x" + c.driver._key.hex()
            yield Node(f"http://127.0.0.1:{sock.getsockname()[1]}", token, key, c)
    finally:
        sock.close()
        engine.dispose()


def _csv(path: Path, now: int, rows: list[tuple[str, str, int]]) -> Path:
    lines = ["tracking_number,status,time,place"]
    lines += [f"{t},{s},{now - ago},Depot 7" for t, s, ago in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GOOD = [
    (PARCELS[0], "picked_up", 300),
    (PARCELS[0], "departed", 200),
    (PARCELS[1], "picked_up", 100),
]


def test_import_prints_a_summary_and_a_second_run_stores_nothing(
    node: Node, tmp_path: Path
) -> None:
    file = _csv(tmp_path / "events.csv", node.courier.now, GOOD)
    first = runner.invoke(app, ["import", str(file)], env=node.env())
    assert first.exit_code == 0, first.output
    assert "import summary" in first.output and "Traceback" not in first.output
    assert [node.events(p) for p in PARCELS] == [2, 1]
    again = runner.invoke(app, ["import", str(file), "--json"], env=node.env())
    assert again.exit_code == 0, again.output
    report = json.loads(again.stdout)
    assert (report["rows"], report["accepted"], report["already_imported"]) == (3, 0, 3)
    assert report["rejected"] == [] and report["interrupted"] is None
    assert [node.events(p) for p in PARCELS] == [2, 1]


def test_rejected_rows_exit_1_and_go_to_the_rejects_file(node: Node, tmp_path: Path) -> None:
    rows = [*GOOD, (PARCELS[1], "delivered", 50), (PARCELS[1], "nowhere", 40)]
    file = _csv(tmp_path / "events.csv", node.courier.now, rows)
    rejects = tmp_path / "rejects.csv"
    result = runner.invoke(
        app, ["import", str(file), "--rejects", str(rejects), "--json"], env=node.env()
    )
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["accepted"] == 2
    reasons = {r["where"]: r["reason"] for r in report["rejected"]}
    assert list(reasons) == ["line 4", "line 5", "line 6"]  # in file order, however found
    assert reasons["line 6"] == "unknown status 'nowhere'"
    assert "delivered may not follow picked_up" in reasons["line 5"]
    assert reasons["line 4"] == "not imported: line 5 of the same shipment was refused"
    assert rejects.read_text(encoding="utf-8").splitlines()[0] == "where,reason"
    assert len(rejects.read_text(encoding="utf-8").splitlines()) == 4
    assert [node.events(p) for p in PARCELS] == [2, 0]
    human = runner.invoke(app, ["import", str(file)], env=node.env())
    assert human.exit_code == 1
    assert "rejected rows" in human.output and "line 6" in human.output
    assert PARCELS[1] not in human.output  # reasons point at lines, never echo the rows


def test_bad_input_and_settings_exit_2_with_one_line(node: Node, tmp_path: Path) -> None:
    def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
        r = runner.invoke(app, ["import", *args], env=env or node.env())
        assert "Traceback" not in r.output
        return r.exit_code, r.output.strip()

    file = _csv(tmp_path / "events.csv", node.courier.now, GOOD)
    assert run(str(tmp_path / "events.txt")) == (
        2,
        "error: cannot tell the format of 'events.txt': use --format csv, jsonl or epcis",
    )
    assert run(str(file), "--format", "xml")[0] == 2
    assert run(str(tmp_path / "missing.csv"))[1].startswith("error: cannot read")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("tracking_number,status,time\nPP1,pické,1\n".encode("latin-1"))
    assert run(str(latin)) == (2, "error: the file is not UTF-8 (byte 36)")
    header = tmp_path / "header.csv"
    header.write_text("tracking,status\n", encoding="utf-8")
    assert run(str(header)) == (2, "error: the CSV header lacks the column(s): time")
    no_token = {**node.env(), "PARCELPROOF_API_TOKEN": ""}
    assert run(str(file), env=no_token)[1].startswith("error: missing API token")
    wrong = {**node.env(), "PARCELPROOF_API_TOKEN": "pp_" + "x" * 40}
    code, out = run(str(file), env=wrong)
    assert code == 2 and out.startswith("error: the node refused the token")
    assert [node.events(p) for p in PARCELS] == [0, 0]


def test_a_node_that_is_down_exits_3_and_says_to_run_again(node: Node, tmp_path: Path) -> None:
    file = _csv(tmp_path / "events.csv", node.courier.now, GOOD)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    result = runner.invoke(
        app, ["import", str(file)], env={**node.env(), "PARCELPROOF_API_URL": closed}
    )
    assert result.exit_code == 3, result.output
    assert "cannot reach the API" in result.output
    assert "3 row(s) not sent. Run the same command again" in result.output


def _on_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run ``args`` with stdout and stderr on a pseudo-terminal; its exit code and screen."""
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=secondary,
        stderr=secondary,
        env={**os.environ, **env, "COLUMNS": "120", "TERM": "xterm"},
    )
    os.close(secondary)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([primary], [], [], 1)
        if ready:
            try:
                data = os.read(primary, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(primary)
    return proc.wait(timeout=30), b"".join(chunks).decode("utf-8", "replace")


def test_a_terminal_shows_the_progress_bar(node: Node, tmp_path: Path) -> None:
    file = _csv(tmp_path / "events.csv", node.courier.now, GOOD)
    code, screen = _on_terminal(
        [sys.executable, "-m", "parcelproof", "import", str(file)], node.env()
    )
    assert code == 0, screen
    assert "checking rows" in screen and "importing" in screen
    assert "3/3" in screen and "━" in screen  # the bar, full
    assert "import summary" in screen
    # Not on a terminal: no bar, only the summary.
    piped = subprocess.run(
        [sys.executable, "-m", "parcelproof", "import", str(file), "--json"],
        env={**os.environ, **node.env()},
        capture_output=True,
        text=True,
    )
    assert piped.returncode == 0 and piped.stderr == ""
    assert json.loads(piped.stdout)["already_imported"] == 3


def test_long_steps_show_a_spinner_on_a_terminal_only() -> None:
    script = (
        "import time\n"
        "from parcelproof.cli import _working\n"
        "with _working('compiling'):\n"
        "    time.sleep(0.5)\n"
    )
    code, screen = _on_terminal([sys.executable, "-c", script], {})
    assert code == 0 and "compiling" in screen
    piped = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert piped.returncode == 0 and piped.stdout == piped.stderr == ""


def test_shell_completion_names_commands_and_formats() -> None:
    def complete(words: str, cword: int) -> list[str]:
        env = {
            **os.environ,
            "_PARCELPROOF_COMPLETE": "complete_bash",
            "COMP_WORDS": words,
            "COMP_CWORD": str(cword),
        }
        out = subprocess.run([str(SCRIPT)], env=env, capture_output=True, text=True)
        return out.stdout.split()

    assert complete("parcelproof imp", 1) == ["import"]
    assert complete("parcelproof import x.csv --format ", 4) == ["csv", "jsonl", "epcis"]
    assert "rotate" in complete("parcelproof keys ", 2)
    script = subprocess.run(
        [str(SCRIPT), "--show-completion", "bash"],
        capture_output=True,
        text=True,
    )
    assert script.returncode == 0 and "_PARCELPROOF_COMPLETE=complete_bash" in script.stdout
