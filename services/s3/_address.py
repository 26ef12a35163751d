"""Where a bucket's requests go: the endpoint, path or virtual-host style, the targets.

One object answers "which host, which path" for the HTTP transport and for presigned
URLs, so both address a key the same way (and sign the same path).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from storager._sigv4 import uri_encode

__all__ = ["Address"]


@dataclass(frozen=True, slots=True)
class Address:
    """How to reach keys of one bucket.

    Attributes:
        scheme: ``http`` or ``https``.
        host: The host to connect to (``bucket.host`` in virtual-host style).
        port: The port, None for the scheme's default.
        host_header: The Host header (and the signed host).
        path_prefix: The decoded path before a key: ``/bucket/`` or ``/``.
    """

    scheme: str
    host: str
    port: int | None
    host_header: str
    path_prefix: str

    @classmethod
    def of(
        cls, endpoint: str | None, bucket: str, region: str, force_path_style: bool | None
    ) -> Address:
        """Address ``bucket`` at ``endpoint`` (already checked), or AWS's regional one.

        Path style is the default for a custom endpoint, virtual-host style for AWS.
        """
        url = urlsplit(endpoint or f"https://s3.{region}.amazonaws.com")
        path_style = endpoint is not None if force_path_style is None else force_path_style
        host = url.hostname or ""
        if not path_style:
            host = f"{bucket}.{host}"
        default_port = 443 if url.scheme == "https" else 80
        host_header = host if url.port in (None, default_port) else f"{host}:{url.port}"
        base = url.path.rstrip("/")
        prefix = f"{base}/{bucket}/" if path_style else f"{base}/"
        return cls(url.scheme, host, url.port, host_header, prefix)

    @property
    def origin(self) -> str:
        """``scheme://host[:port]``: what error messages and URLs show (no secret)."""
        return f"{self.scheme}://{self.host_header}"

    def path(self, key: str) -> str:
        """The decoded request path of ``key`` (what SigV4 signs)."""
        return self.path_prefix + key

    def target(self, key: str, query: list[tuple[str, str]] | tuple[()] = ()) -> str:
        """The request target: the encoded path of ``key`` and the encoded query."""
        target = uri_encode(self.path_prefix + key, keep_slash=True)
        if query:
            target += "?" + "&".join(f"{uri_encode(n)}={uri_encode(v)}" for n, v in query)
        return target
