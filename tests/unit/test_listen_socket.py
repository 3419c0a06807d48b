"""The API's listening socket: connections it accepts send small answers without delay."""

from __future__ import annotations

import socket

import pytest

from parcelproof.cli import _listen
from parcelproof.settings import ConfigurationError


def test_accepted_connections_have_nagle_off() -> None:
    """With Nagle on, each answer's second segment waited for the client's delayed ACK:
    44 ms per request on Linux, whatever the work."""
    sock = _listen("127.0.0.1", 0)
    try:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        with socket.create_connection(sock.getsockname()[:2]):
            conn, _ = sock.accept()
            with conn:
                assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        sock.close()


def test_a_taken_port_is_a_configuration_error() -> None:
    sock = _listen("127.0.0.1", 0)
    try:
        with pytest.raises(ConfigurationError, match="cannot listen"):
            _listen("127.0.0.1", sock.getsockname()[1])
    finally:
        sock.close()
