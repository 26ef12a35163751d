"""Shared helpers for the test servers: free loopback ports, logged subprocesses, readiness.

Every server binds to 127.0.0.1 only. A server is started in its own session (process group)
with stdout and stderr going to a log file in its own temp dir, polled until it answers, and
stopped by its PID (SIGTERM to its process group, then SIGKILL after a few seconds).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

LOOPBACK = "127.0.0.1"

# Ports handed out by this process, so two servers started in one session never get the same
# port even before the first one has bound it.
_handed_out: set[int] = set()

# Below Linux's ephemeral range (32768-60999 by default), so a port we pick is not taken in the
# meantime by some client's outgoing connection.
_LOW_PORT = 10000
_HIGH_PORT = 32767


def port_is_free(port: int) -> bool:
    """Return whether a TCP port can be bound on 127.0.0.1 right now."""
    if not 0 < port < 65536:
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def free_port(*, also_free_offsets: Iterable[int] = ()) -> int:
    """Return a free TCP port on 127.0.0.1 such that ``port + offset`` is free too.

    Args:
        also_free_offsets: offsets whose ports must also be free, e.g. ``(10000,)`` for
            SeaweedFS, whose gRPC port is its HTTP port + 10000.

    Raises:
        RuntimeError: no such port was found.
    """
    offsets = sorted(set(also_free_offsets))
    if not offsets:
        for _ in range(50):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((LOOPBACK, 0))
                port = int(sock.getsockname()[1])
            if port not in _handed_out:
                _handed_out.add(port)
                return port
        raise RuntimeError("could not find a free TCP port on 127.0.0.1")

    high = _HIGH_PORT - offsets[-1]
    low = _LOW_PORT if high > _LOW_PORT else 1024
    if high <= low:
        high = 65535 - offsets[-1]
    for _ in range(500):
        port = random.randint(low, high)
        group = [port, *(port + offset for offset in offsets)]
        if any(p in _handed_out for p in group):
            continue
        if all(port_is_free(p) for p in group):
            _handed_out.update(group)
            return port
    raise RuntimeError(
        f"could not find a free TCP port P on 127.0.0.1 with P+{offsets} free too "
        f"(tried 500 ports in {low}-{high})"
    )


def make_temp_dir(name: str) -> Path:
    """Create a fresh temp dir for one server's logs and data."""
    return Path(tempfile.mkdtemp(prefix=f"storager-{name}-"))


def log_tail(path: Path, lines: int = 40) -> str:
    """Return the last ``lines`` lines of a log file, or a note if it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(cannot read log {path}: {exc})"
    tail = text.splitlines()[-lines:]
    return "\n".join(tail) if tail else "(log is empty)"


def stop_pid(pid: int, *, popen: subprocess.Popen[bytes] | None = None, grace: float = 5.0) -> None:
    """Stop a server started by :func:`start_process`: SIGTERM, wait, then SIGKILL.

    The signal goes to the process group whose id is ``pid`` (the server was started as the
    leader of a new session), so helper processes it forked stop with it.
    """
    if popen is not None and popen.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    if _wait_pid(pid, popen, grace):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    _wait_pid(pid, popen, grace)


def _wait_pid(pid: int, popen: subprocess.Popen[bytes] | None, timeout: float) -> bool:
    """Wait until ``pid`` has exited; return whether it did within ``timeout`` seconds."""
    if popen is not None:
        try:
            popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


@dataclass(frozen=True, slots=True)
class ServerProcess:
    """A server subprocess with its log file and scratch directory."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    temp_dir: Path

    @property
    def pid(self) -> int:
        """The server's PID (also its process group id)."""
        return self.popen.pid

    def log_tail(self, lines: int = 40) -> str:
        """Return the last lines of the server's log."""
        return log_tail(self.log_path, lines)

    def stop(self, *, remove_temp_dir: bool = True) -> None:
        """Stop the server by its PID and remove its temp dir (logs and data)."""
        stop_pid(self.pid, popen=self.popen)
        if remove_temp_dir:
            shutil.rmtree(self.temp_dir, ignore_errors=True)


def start_process(
    name: str,
    argv: Sequence[str],
    *,
    temp_dir: Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> ServerProcess:
    """Start ``argv`` in a new session with its output in ``temp_dir/<name>.log``.

    Raises:
        RuntimeError: the program could not be executed.
    """
    log_path = temp_dir / f"{name}.log"
    with log_path.open("wb") as log:
        try:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=dict(env) if env is not None else None,
                start_new_session=True,
            )
        except OSError as exc:
            shutil.rmtree(temp_dir, ignore_errors=True)
            raise RuntimeError(f"{name}: cannot run {argv[0]!r}: {exc}") from exc
    return ServerProcess(name=name, popen=popen, log_path=log_path, temp_dir=temp_dir)


def http_answers(url: str, timeout: float = 1.0) -> bool:
    """Return whether ``url`` gives any HTTP answer at all (an error status counts)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


def wait_until_ready(
    server: ServerProcess,
    ready: str | Callable[[], bool],
    *,
    timeout: float,
) -> float:
    """Poll until the server is ready; return the seconds waited.

    Args:
        server: the process; if it exits while we wait, that is an error at once.
        ready: a URL that must give any HTTP answer, or a callable returning True when ready.
        timeout: seconds before giving up.

    Raises:
        RuntimeError: the server exited or did not become ready in time; the message holds the
            tail of its log. The server is stopped first (its temp dir is kept for inspection).
    """
    check: Callable[[], bool] = (lambda: http_answers(ready)) if isinstance(ready, str) else ready
    what = ready if isinstance(ready, str) else getattr(ready, "__name__", "readiness check")
    start = time.monotonic()
    deadline = start + timeout
    while True:
        code = server.popen.poll()
        if code is not None:
            raise RuntimeError(
                f"{server.name} exited with code {code} before it was ready "
                f"(log: {server.log_path}):\n{server.log_tail()}"
            )
        if check():
            return time.monotonic() - start
        if time.monotonic() >= deadline:
            server.stop(remove_temp_dir=False)
            raise RuntimeError(
                f"{server.name} was not ready after {timeout:.0f} s (waiting for {what}; "
                f"log: {server.log_path}):\n{server.log_tail()}"
            )
        time.sleep(0.05)


def start_server(
    name: str,
    argv: Sequence[str],
    ready: str | Callable[[], bool],
    *,
    temp_dir: Path,
    timeout: float = 30.0,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> ServerProcess:
    """Start a server with :func:`start_process` and wait for it with :func:`wait_until_ready`."""
    server = start_process(name, argv, temp_dir=temp_dir, cwd=cwd, env=env)
    wait_until_ready(server, ready, timeout=timeout)
    return server


def find_executable(name: str) -> str | None:
    """Find a program installed next to this Python (a venv's bin dir), then on PATH."""
    beside = Path(os.path.dirname(os.path.abspath(sys.executable))) / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)
