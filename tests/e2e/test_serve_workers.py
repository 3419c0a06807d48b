"""`serve --workers N`: API processes sharing one socket, none outliving the node."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from parcelproof.chain.devnet import Anvil
from tests.faults.harness import System

pytestmark = [pytest.mark.anvil, pytest.mark.slow]


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


def _gone(pids: list[int], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(_alive(p) for p in pids):
            return True
        time.sleep(0.1)
    return False


def _system(tmp_path: Path, anvil_node: Anvil) -> System:
    return System(
        tmp_path / "node",
        anvil_node.url,
        f"sqlite:///{tmp_path / 'node' / 'parcelproof.sqlite'}",
        extra_env={"PARCELPROOF_API_WORKERS": "3"},
    )


def test_workers_share_the_socket_and_stop_with_the_node(tmp_path: Path, anvil_node: Anvil) -> None:
    s = _system(tmp_path, anvil_node)
    s.api.start()
    try:
        assert s.api.popen is not None
        workers = _children(s.api.popen.pid)
        assert len(workers) == 2  # the first process and two forked ones
        auth = {"Authorization": f"Bearer {s.token}"}
        with httpx.Client(base_url=s.api.url, timeout=30) as client:
            for i in range(30):  # new connections, spread over the processes by the kernel
                r = client.post(
                    "/v1/shipments",
                    headers={**auth, "Connection": "close"},
                    json={"tracking_number": f"PW{i:08d}NL", "postcode": "1000 AB"},
                )
                assert r.status_code == 201, r.text
            assert client.get("/readyz").status_code == 200
    finally:
        s.api.stop()
    assert s.api.popen is not None and s.api.popen.returncode == 0
    assert _gone(workers)


def test_forked_workers_die_with_a_killed_node(tmp_path: Path, anvil_node: Anvil) -> None:
    s = _system(tmp_path, anvil_node)
    s.api.start()
    assert s.api.popen is not None
    workers = _children(s.api.popen.pid)
    assert len(workers) == 2
    s.api.popen.send_signal(signal.SIGKILL)
    s.api.popen.wait()
    assert _gone(workers), "forked API processes outlived the killed node"
