"""``storager serve``: serve stores as S3 buckets over HTTP(S), with uvicorn.

::

    storager serve s3://bucket/?endpoint=... --bucket bucket --credential AK:SK
    storager serve ./photos --bucket photos --anonymous
    storager serve --config tree.toml --bucket photos=photos_tree --bucket logs=logs_tree

Credentials come from ``--credential AK:SK`` (repeatable) or the environment variable
``STORAGER_SERVE_CREDENTIALS`` (``AK:SK,AK2:SK2``), which keeps secrets out of the
process list. Without either, ``--anonymous`` must be given. The server binds
127.0.0.1 unless ``--host`` says otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import posixpath
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from storager._protocols import Storager

__all__ = ["CREDENTIALS_ENV", "ServeSettings", "add_serve_parser", "build_app", "cmd_serve"]

CREDENTIALS_ENV = "STORAGER_SERVE_CREDENTIALS"
# How --workers hands the settings to uvicorn's worker processes.
_SETTINGS_ENV = "STORAGER_SERVE_SETTINGS"


class ServeUsageError(Exception):
    """The serve command line is wrong."""


@dataclass
class ServeSettings:
    """What ``storager serve`` was asked to serve, and how (JSON-able for workers)."""

    url: str | None = None
    config: str | None = None
    buckets: dict[str, str] = field(default_factory=dict)
    credentials: dict[str, str] = field(default_factory=dict)
    anonymous: bool = False
    region: str | None = None
    threads: int = 32
    upload_max_age_hours: float = 24.0
    domain: str | None = None


def _credentials(values: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for text in [*values, *filter(None, os.environ.get(CREDENTIALS_ENV, "").split(","))]:
        access, sep, secret = text.strip().partition(":")
        if not sep or not access or not secret:
            raise ServeUsageError("a credential is ACCESS_KEY:SECRET_KEY")
        found[access] = secret
    return found


def _store_url(arg: str) -> str:
    if "://" in arg:
        return arg
    return "fs://" + os.path.abspath(os.path.expanduser(arg))


def settings_from(args: argparse.Namespace) -> ServeSettings:
    """Check the command line and return the settings it names."""
    settings = ServeSettings(
        credentials=_credentials(args.credential or []),
        anonymous=args.anonymous,
        region=args.region,
        threads=args.threads,
        upload_max_age_hours=args.upload_max_age,
        domain=args.domain,
    )
    if not settings.credentials and not settings.anonymous:
        raise ServeUsageError(
            f"give --credential AK:SK (or {CREDENTIALS_ENV}), or --anonymous to serve "
            "without authentication"
        )
    if args.config:
        if args.url:
            raise ServeUsageError("give a URL or --config, not both")
        settings.config = args.config
        for text in args.bucket or []:
            name, sep, tree = text.partition("=")
            if not sep or not name or not tree:
                raise ServeUsageError("with --config, --bucket is NAME=TREE")
            settings.buckets[name] = tree
        if not settings.buckets:
            raise ServeUsageError("with --config, give at least one --bucket NAME=TREE")
    else:
        if not args.url:
            raise ServeUsageError("give the URL of a store to serve, or --config")
        settings.url = _store_url(args.url)
        names = args.bucket or []
        if len(names) > 1 or any("=" in name for name in names):
            raise ServeUsageError("with a URL, --bucket is one NAME")
        default = posixpath.basename(args.url.partition("?")[0].rstrip("/")) or "bucket"
        settings.buckets[names[0] if names else default] = settings.url
    return settings


def open_stores(settings: ServeSettings) -> dict[str, Storager]:
    """Open the store of every bucket."""
    import storager
    from storager.tree import TreeFile

    if settings.config:
        trees = TreeFile.read(settings.config)
        return {name: trees.build(tree) for name, tree in settings.buckets.items()}
    return {name: storager.open(url) for name, url in settings.buckets.items()}


def build_app(settings: ServeSettings) -> Any:
    """Build the S3App for ``settings`` (its stores closed when it shuts down).

    It changes the whole process's allocator: glibc keeps freed multi-MiB buffers for
    reuse (``storager._malloc``), so a large upload's pieces land in memory the last
    one freed instead of pages the kernel maps and zeroes anew. Embedding code that
    calls this gets that setting too.
    """
    from storager._malloc import retain_freed_buffers
    from storager.gateway import S3App

    retain_freed_buffers()
    return S3App(
        open_stores(settings),
        credentials=settings.credentials,
        anonymous=settings.anonymous,
        region=settings.region,
        threads=settings.threads,
        upload_max_age=timedelta(hours=settings.upload_max_age_hours),
        close_stores=True,
        domain=settings.domain,
    )


def app_from_environment() -> Any:
    """The app of a ``--workers`` child process (uvicorn's factory)."""
    return build_app(ServeSettings(**json.loads(os.environ[_SETTINGS_ENV])))


def cmd_serve(args: argparse.Namespace, ctx: object) -> None:
    """Serve until interrupted."""
    try:
        settings = settings_from(args)
    except ServeUsageError as exc:
        from storager.cli._commands import UsageError

        raise UsageError(str(exc)) from None
    try:
        from storager.gateway._server import run
    except ImportError:  # pragma: no cover - the gateway extra
        from storager.cli._commands import UsageError

        raise UsageError("storager serve needs uvicorn: pip install 'storager[gateway]'") from None
    if bool(args.tls_cert) != bool(args.tls_key):
        from storager.cli._commands import UsageError

        raise UsageError("give --tls-cert and --tls-key together")
    from storager.gateway._busy_poll import MAX_WINDOW

    if not 0 <= args.busy_poll_us <= MAX_WINDOW * 1e6:
        from storager.cli._commands import UsageError

        raise UsageError(f"--busy-poll-us must be 0 to {MAX_WINDOW * 1e6:.0f} (10 ms)")
    logging.basicConfig(level=getattr(logging, args.log_level.upper()), format="%(message)s")
    options: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "log_level": args.log_level,
        "tls_cert": args.tls_cert,
        "tls_key": args.tls_key,
        "busy_poll": args.busy_poll_us / 1e6,
    }
    if args.workers > 1 or args.server == "granian":
        os.environ[_SETTINGS_ENV] = json.dumps(asdict(settings))
        factory = "storager.cli._serve:app_from_environment"
        run(factory, workers=args.workers, server=args.server, **options)
    else:
        run(build_app(settings), **options)


def add_serve_parser(sub: Any, func: Callable[..., None] | None = None) -> None:
    """Add the ``serve`` subcommand to the CLI's subparsers."""
    serve = sub.add_parser(
        "serve",
        help="serve stores as S3 buckets (an S3-compatible gateway)",
        description=__doc__.split("::")[0].strip() if __doc__ else None,
    )
    serve.add_argument("url", nargs="?", metavar="URL", help="the store to serve (or a local dir)")
    serve.add_argument("--config", metavar="TREE.toml", help="serve trees of this file")
    serve.add_argument(
        "--bucket",
        action="append",
        metavar="NAME[=TREE]",
        help="the bucket name (with --config: NAME=TREE, repeatable)",
    )
    serve.add_argument(
        "--credential", action="append", metavar="AK:SK", help="an access key and its secret"
    )
    serve.add_argument(
        "--anonymous", action="store_true", help="accept unsigned requests (no credentials)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=9000, help="port (default 9000)")
    serve.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS with this certificate")
    serve.add_argument("--tls-key", metavar="PEM", help="the certificate's private key")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.add_argument(
        "--server",
        choices=["uvicorn", "granian"],
        default="uvicorn",
        help="the ASGI server (default uvicorn)",
    )
    serve.add_argument("--threads", type=int, default=32, help="store threads per worker")
    serve.add_argument(
        "--busy-poll-us",
        type=int,
        default=100,
        metavar="US",
        help="microseconds the server polls after an answer before it sleeps: a quicker "
        "next request, for a little CPU (uvicorn only; 0 turns it off, at most 10000; "
        "default 100)",
    )
    serve.add_argument("--region", help="the region signatures must name (default: any)")
    serve.add_argument(
        "--domain",
        help="base domain of virtual-hosted-style requests (BUCKET.DOMAIN); default path-style",
    )
    serve.add_argument(
        "--upload-max-age",
        type=float,
        default=24.0,
        metavar="HOURS",
        help="abort incomplete multipart uploads older than this (default 24)",
    )
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log level; info logs one line per request (default info)",
    )
    serve.set_defaults(func=func or cmd_serve)
