"""Shared fixtures: one throw-away anvil node per test session (started only when asked for)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from parcelproof.chain.devnet import Anvil


@pytest.fixture(scope="session")
def anvil_node() -> Iterator[Anvil]:
    """A real anvil from node_modules on a free loopback port, stopped at session end."""
    with Anvil() as node:
        yield node
