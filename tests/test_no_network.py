"""The suite runs without the network: pytest-socket (addopts) makes any connection attempt fail."""

from __future__ import annotations

import socket

import pytest
from pytest_socket import SocketBlockedError


@pytest.mark.filterwarnings("ignore:A test tried to use socket")
def test_a_test_cannot_open_a_network_socket() -> None:
    """A test that reaches out (a hub download, a telemetry call) fails here instead of hanging or flaking."""
    with pytest.raises(SocketBlockedError):
        socket.create_connection(("127.0.0.1", 9), timeout=1)
    with pytest.raises(SocketBlockedError):
        socket.socket(socket.AF_INET6, socket.SOCK_STREAM)


def test_unix_sockets_stay_allowed() -> None:
    """asyncio and multiprocessing use socketpair() (AF_UNIX on Linux): those must keep working."""
    a, b = socket.socketpair()
    with a, b:
        a.sendall(b"x")
        assert b.recv(1) == b"x"
