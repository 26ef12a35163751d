"""moto's S3 server, in-process on a free 127.0.0.1 port.

moto keeps every bucket in RAM, in this process's global moto backends: ``mock_aws`` used in
the same process sees (and resets) the same state. Bucket names must be 3-63 characters.
With s3fs, do not pass ``region_name="us-east-1"`` in ``client_kwargs``: bucket creation then
fails with an invalid location constraint. boto3 takes ``region`` as it is.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field

from tests.servers._process import LOOPBACK, http_answers

try:
    from moto.server import ThreadedMotoServer
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        'moto\'s server is not installed: pip install "moto[server]" (the [test] extra)'
    ) from exc


@dataclass(frozen=True, slots=True)
class MotoServer:
    """A running moto S3 server; ``stop()`` shuts it down."""

    endpoint: str
    """``http://127.0.0.1:PORT``."""
    access_key: str
    secret_key: str
    region: str
    """Region to sign with in boto3 (not to pass to s3fs as ``region_name``)."""
    _server: ThreadedMotoServer = field(repr=False, compare=False)

    def stop(self) -> None:
        """Shut the server down and close its listening socket."""
        self._server.stop()
        wsgi = getattr(self._server, "_server", None)
        if wsgi is not None:
            with contextlib.suppress(OSError):
                wsgi.server_close()


def start_moto(*, timeout: float = 30.0) -> MotoServer:
    """Start moto's S3 server on a free loopback port and wait until it answers.

    Raises:
        RuntimeError: the server did not start or did not answer in time.
    """
    # werkzeug logs every request to stderr; the tests make thousands.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # Port 0: the OS picks a free port as the server binds, so there is no race (a bind error
    # inside moto's thread would leave ``start()`` waiting forever).
    server = ThreadedMotoServer(ip_address=LOOPBACK, port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    if host != LOOPBACK:
        server.stop()
        raise RuntimeError(f"moto: bound to {host}:{port}, expected {LOOPBACK}")
    endpoint = f"http://{LOOPBACK}:{port}"
    handle = MotoServer(
        endpoint=endpoint,
        access_key="testing",
        secret_key="testing",
        region="us-east-1",
        _server=server,
    )
    deadline = time.monotonic() + timeout
    while not http_answers(f"{endpoint}/moto-api/"):
        if time.monotonic() >= deadline:
            handle.stop()
            raise RuntimeError(f"moto: no answer on {endpoint}/moto-api/ after {timeout:.0f} s")
        time.sleep(0.05)
    return handle
