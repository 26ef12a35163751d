"""How a ``storager+<scheme>://`` URL splits into a connection string and a path.

The store is the connection string without its URL path: ``storager+s3://bucket/data/a.csv
?endpoint=...`` is the store ``s3://bucket/?endpoint=...`` and the path ``data/a.csv``. A
service whose connection string takes no host (``memory``, ``fs``) reads the host part as
the first path segment: ``storager+memory://data/a.csv`` is ``memory:///`` and
``data/a.csv``; ``storager+fs:///srv/data/a.csv`` is ``fs:///`` and ``srv/data/a.csv``.
Paths inside a filesystem are relative to its store's ``work_dir``, without a leading or
trailing ``/`` (fsspec's convention).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from storager._errors import ConnectionStringInvalidError
from storager._registry import redact_url, service_class

__all__ = ["BUILTIN_SCHEMES", "PREFIX", "SplitUrl", "join_url", "split_url", "strip_path"]

#: The protocol family's prefix: ``storager+s3``, ``storager+memory``...
PREFIX = "storager+"
#: The schemes with a ``storager+<scheme>`` entry point (pyproject.toml; a test holds the two).
BUILTIN_SCHEMES = ("fs", "memory", "s3", "gcs", "azblob", "sftp", "redis", "rediss")


@dataclass(frozen=True, slots=True)
class SplitUrl:
    """A URL taken apart.

    Attributes:
        scheme: The storager scheme (``"s3"``), without the ``storager+`` prefix.
        connection: The store's connection string (``s3://bucket/?endpoint=...``).
        path: The path inside the store, relative, without a leading or trailing ``/``.
    """

    scheme: str
    connection: str
    path: str


def _scheme_of(protocol: str) -> str:
    protocol = protocol.lower()
    return protocol[len(PREFIX) :] if protocol.startswith(PREFIX) else protocol


def _host_is_path(scheme: str) -> bool:
    """Whether the scheme's connection string takes no host, so the host is a path."""
    return not service_class(scheme).connection.host


def split_url(url: str) -> SplitUrl:
    """Split a ``storager+<scheme>://`` (or registered ``<scheme>://``) URL.

    Raises:
        ConnectionStringInvalidError: ``url`` has no scheme or is malformed.
        ServiceNotRegisteredError: No storager service has the scheme.
    """
    if "://" not in url:
        raise ConnectionStringInvalidError(
            "open", "fsspec", redact_url(url, frozenset()), "expected storager+<scheme>://..."
        )
    protocol, _, rest = url.partition("://")
    scheme = _scheme_of(protocol)
    try:
        parts = urlsplit(f"{scheme}://{rest}")
    except ValueError as exc:
        shown = redact_url(url, frozenset())
        raise ConnectionStringInvalidError(
            "open", scheme, shown, f"malformed URL ({exc})"
        ) from None
    query = f"?{parts.query}" if parts.query else ""
    if _host_is_path(scheme):
        path = parts.netloc + parts.path
        connection = f"{scheme}:///{query}"
    else:
        path = parts.path
        connection = f"{scheme}://{parts.netloc}/{query}"
    return SplitUrl(scheme, connection, path.strip("/"))


def strip_path(path: str) -> str:
    """Return the store path of a URL or of a path, without leading or trailing ``/``."""
    if "://" in path:
        return split_url(path).path
    return path.strip("/")


def join_url(connection: str, path: str) -> str:
    """Return the ``storager+<scheme>://`` URL of ``path`` in the store ``connection``.

    The inverse of :func:`split_url`: ``split_url(join_url(c, p)).path == p``.
    """
    parts = urlsplit(connection)
    query = f"?{parts.query}" if parts.query else ""
    scheme = parts.scheme
    if _host_is_path(scheme):
        return f"{PREFIX}{scheme}://{path}{query}"
    return f"{PREFIX}{scheme}://{parts.netloc}/{path}{query}"
