"""Fault-suite fixtures: fresh courier nodes (processes) on anvil and SQLite or PostgreSQL."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from parcelproof.chain.devnet import Anvil
from tests.conftest import pg_schema
from tests.faults.harness import System


@pytest.fixture(params=["sqlite", "postgresql"])
def make_system(
    request: pytest.FixtureRequest, anvil_node: Anvil, tmp_path: Path
) -> Iterator[Callable[[], System]]:
    """Builds fresh nodes (new ledger, new database) on the session's anvil."""
    counter = iter(range(1000))
    with contextlib.ExitStack() as schemas:

        def factory() -> System:
            workdir = tmp_path / f"system-{next(counter)}"
            if request.param == "postgresql":
                url = schemas.enter_context(
                    pg_schema(request.getfixturevalue("pg_url"), "pp_fault")
                )
            else:
                url = f"sqlite:///{workdir / 'parcelproof.sqlite'}"
            return System(workdir, anvil_node.url, url)

        yield factory
