"""Running an app under uvicorn: the one place the gateway imports its ASGI server."""

from __future__ import annotations

from typing import Any

__all__ = ["run"]


def run(
    app: Any,
    *,
    host: str,
    port: int,
    log_level: str,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    workers: int = 1,
) -> None:
    """Serve ``app`` until interrupted.

    Args:
        app: An ASGI app, or with ``workers > 1`` the import string of a factory that
            builds one in each worker process.
        workers: Worker processes (uvicorn's); 1 serves in this process.
    """
    import uvicorn

    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": log_level,
        "access_log": False,  # the gateway logs each request itself
        "ssl_certfile": tls_cert,
        "ssl_keyfile": tls_key,
        "lifespan": "on",
    }
    if workers > 1:
        uvicorn.run(app, factory=True, workers=workers, **options)
    else:
        uvicorn.run(app, **options)
