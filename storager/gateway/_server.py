"""Running the app under uvicorn or granian: the one place the gateway imports a server."""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["DEFAULT_BUSY_POLL", "SERVERS", "run", "uvicorn_options"]

#: Seconds the event loop polls after an answer before it sleeps (see ``_busy_poll``): a
#: sequential client here sends its next request 60-150 us after an answer; a 50 us window
#: caught few of them, 100 us most (benchmarks/README.md, "Session 9").
DEFAULT_BUSY_POLL = 100e-6

#: The ASGI servers ``storager serve --server`` runs.
SERVERS = ("uvicorn", "granian")


def run(
    app: Any,
    *,
    host: str,
    port: int,
    log_level: str,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    workers: int = 1,
    server: str = "uvicorn",
    busy_poll: float = DEFAULT_BUSY_POLL,
) -> None:
    """Serve ``app`` until interrupted.

    Args:
        app: An ASGI app, or (``workers > 1``, and always for granian) the import string
            of a factory that builds one in each worker process.
        workers: Worker processes; 1 serves in this process (uvicorn).
        server: ``uvicorn`` or ``granian``.
        busy_poll: Seconds the event loop polls after an answer before it sleeps
            (uvicorn only; 0: sleep at once). See ``_busy_poll``.
    """
    if server == "granian":
        _run_granian(app, host, port, log_level, tls_cert, tls_key, workers)
        return
    import uvicorn

    options = uvicorn_options(busy_poll) | {
        "host": host,
        "port": port,
        "log_level": log_level,
        "ssl_certfile": tls_cert,
        "ssl_keyfile": tls_key,
        "lifespan": "on",
    }
    if workers > 1:
        uvicorn.run(app, factory=True, workers=workers, **options)
    else:
        uvicorn.run(app, **options)


def uvicorn_options(busy_poll: float = DEFAULT_BUSY_POLL) -> dict[str, Any]:
    """How the gateway configures uvicorn, whoever starts it (``run``, the tests)."""
    from storager.gateway._busy_poll import MAX_WINDOW
    from storager.gateway._polling_protocol import BusyPollingHttpTools

    if not 0 <= busy_poll <= MAX_WINDOW:
        raise ValueError(f"the busy-poll window must be 0 to {MAX_WINDOW} s")
    return {
        # httptools, its loop polling a while after each answer; 0: uvicorn's default.
        # A partial of a module-level class: --workers pickles it to its processes.
        "http": (
            functools.partial(BusyPollingHttpTools, busy_poll_window=busy_poll)
            if busy_poll
            else "auto"
        ),
        "access_log": False,  # the gateway logs each request itself
        # S3 and REST only: an Upgrade: websocket request is answered as plain HTTP.
        "ws": "none",
        # The gateway reads no client address, so X-Forwarded-* need no parsing per
        # request; and an S3 answer names no server software.
        "proxy_headers": False,
        "server_header": False,
    }


def _run_granian(
    target: Any,
    host: str,
    port: int,
    log_level: str,
    tls_cert: str | None,
    tls_key: str | None,
    workers: int,
) -> None:
    from pathlib import Path

    from granian import Granian
    from granian.constants import Interfaces

    if not isinstance(target, str):
        raise TypeError("granian serves an app factory given by its import string")
    Granian(
        target,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        factory=True,
        log_level=log_level,  # type: ignore[arg-type]
        ssl_cert=Path(tls_cert) if tls_cert else None,
        ssl_key=Path(tls_key) if tls_key else None,
    ).serve()
