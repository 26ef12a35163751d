"""A request refused before its body was read ends its connection.

Otherwise the unread body would be taken for the next request on the kept-alive
connection: boto3 sends ``Expect: 100-continue`` and, refused, never sends the body, so
its next request on that connection was read as the rest of the first (uvicorn answered
400 to it). The answer to such a request says ``Connection: close`` and the server closes.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from storager.gateway import S3App
from storager.services.memory import MemoryStorage
from tests.gateway.conftest import _Served


@pytest.fixture
def port() -> Iterator[int]:
    store = MemoryStorage()
    server = _Served(S3App({"b": store}, credentials={"AK": "SK"}), lifespan="on")
    try:
        yield server.port
    finally:
        server.stop()
        store.close()


def _exchange(port: int, request: bytes) -> bytes:
    """Send ``request`` and read until the server closes (or 10 s pass)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def test_refused_before_the_body_is_sent_closes_the_connection(port: int) -> None:
    # Unsigned, so refused at once; the client waits for 100 Continue and sends nothing.
    head = (
        b"PUT /b/k HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    )
    answer = _exchange(port, head)  # returns only because the server closed
    status, _, rest = answer.partition(b"\r\n")
    assert b" 403 " in status
    assert b"\r\nconnection: close\r\n" in rest.lower()
    assert answer.count(b"HTTP/1.1 ") == 1


def test_a_pipelined_request_after_a_refused_body_is_not_misread(port: int) -> None:
    first = b"PUT /b/k HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhello"
    second = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    answer = _exchange(port, first + second)
    statuses = [line for line in answer.split(b"\r\n") if line.startswith(b"HTTP/1.1 ")]
    assert b" 400 " not in b"".join(statuses)
    assert b" 403 " in statuses[0]
    # Either the connection ended after the refusal, or the health check was answered.
    assert len(statuses) == 1 or b" 200 " in statuses[1]
