"""A 256 MiB PUT and GET through ``storager serve`` leave the server's peak memory bounded.

The gateway runs in a child process over a local directory (so the object lives on disk,
not in the server's memory) and its peak resident set is read from ``VmHWM`` in
``/proc/<pid>/status``: that peak belongs to the process image, unlike ``ru_maxrss``,
which carries the parent's peak across execve. The bound (docs/gateway.md, "Atomic and
bounded") is on the growth of that peak over a warmed-up server: 256 MiB each way must
raise it by less than :data:`BOUND_MIB`.
"""

from __future__ import annotations

import hashlib
import http.client
from pathlib import Path

import pytest

from tests.gateway._raw import send, signed_headers
from tests.gateway.conftest import ACCESS_KEY, SECRET_KEY
from tests.gateway.test_serve import _Process

pytestmark = pytest.mark.slow

MiB = 1 << 20
SIZE_MIB = 256
#: How much a 256 MiB PUT and GET may raise the server's peak RSS (documented).
BOUND_MIB = 32


def _peak_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM in /proc/{pid}/status")


def _piece(n: int) -> bytes:
    return n.to_bytes(8, "big") * (MiB // 8)


def _put_streamed(port: int, path: str, mib: int) -> str:
    """PUT ``mib`` MiB, sent a MiB at a time (UNSIGNED-PAYLOAD); return its SHA-256."""
    headers = signed_headers(port, "PUT", path, "UNSIGNED-PAYLOAD")
    headers["content-length"] = str(mib * MiB)
    digest = hashlib.sha256()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.putrequest("PUT", path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        for n in range(mib):
            piece = _piece(n)
            digest.update(piece)
            conn.send(piece)
        answer = conn.getresponse()
        assert answer.status == 200, answer.read()
        answer.read()
    finally:
        conn.close()
    return digest.hexdigest()


def _get_streamed(port: int, path: str) -> tuple[int, str]:
    """GET ``path`` a MiB at a time; return its size and SHA-256."""
    headers = signed_headers(port, "GET", path, hashlib.sha256(b"").hexdigest())
    digest = hashlib.sha256()
    size = 0
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        answer = conn.getresponse()
        assert answer.status == 200
        while piece := answer.read(MiB):
            digest.update(piece)
            size += len(piece)
    finally:
        conn.close()
    return size, digest.hexdigest()


def test_256_mib_put_and_get_keep_the_server_peak_rss_bounded(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    server = _Process(
        [str(root), "--bucket", "big", "--log-level", "warning"],
        {"STORAGER_SERVE_CREDENTIALS": f"{ACCESS_KEY}:{SECRET_KEY}"},
    )
    try:
        port, pid = server.port, server.proc.pid
        _put_streamed(port, "/big/warm", 2)  # load every code path before the baseline
        assert _get_streamed(port, "/big/warm")[0] == 2 * MiB
        baseline = _peak_mib(pid)
        sent = _put_streamed(port, "/big/blob", SIZE_MIB)
        assert (root / "blob").stat().st_size == SIZE_MIB * MiB
        assert _get_streamed(port, "/big/blob") == (SIZE_MIB * MiB, sent)
        growth = _peak_mib(pid) - baseline
        assert growth < BOUND_MIB, f"the peak grew by {growth:.1f} MiB from {baseline:.1f}"
        answer = send(port, "GET", "/healthz")
        assert answer.status == 200
    finally:
        server.stop()
