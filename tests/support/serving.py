"""Test plumbing shared by the end-to-end and browser tests: the app served by uvicorn on a
bound socket, and a Node driver script run over JSON lines (it asks, the test answers)."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI


@contextmanager
def serving(app: FastAPI, sock: socket.socket) -> Iterator[None]:
    """Serve ``app`` on the bound ``sock`` in a thread until the block ends."""
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def drive(
    node: str,
    script: Path,
    args: dict[str, Any],
    answer: Callable[[dict[str, Any]], Any],
    *,
    cwd: Path,
    timeout: float,
) -> Any:
    """Run ``script`` with ``args``; answer each ``{"ask": …}`` line it prints, return its
    ``{"result": …}``. Fails the test (with the script's stderr) when it ends without a result
    or takes longer than ``timeout``; its process group is killed either way."""
    proc = subprocess.Popen(
        [node, str(script), json.dumps(args)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        start_new_session=True,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    lines: queue.Queue[str | None] = queue.Queue()
    stderr: list[str] = []

    def pump(stream: Any, into: Callable[[str], object]) -> None:
        for line in stream:
            into(line)

    def read_stdout() -> None:
        pump(proc.stdout, lines.put)
        lines.put(None)

    out = threading.Thread(target=read_stdout)
    err = threading.Thread(target=pump, args=(proc.stderr, stderr.append))
    out.start()
    err.start()
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(
                    f"{script.name} did not finish in {timeout:g} s:\n{''.join(stderr)[-4000:]}"
                )
            if line is None:
                proc.wait(timeout=30)
                err.join(timeout=5)
                pytest.fail(
                    f"{script.name} ended (exit {proc.returncode}) without a result:\n"
                    f"{''.join(stderr)[-6000:]}"
                )
            message = json.loads(line)
            if "ask" in message:
                proc.stdin.write(json.dumps(answer(message["ask"])) + "\n")
                proc.stdin.flush()
            else:
                result = message["result"]
                break
        assert proc.wait(timeout=30) == 0, "".join(stderr)[-4000:]
        return result
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        out.join(timeout=5)
        err.join(timeout=5)
