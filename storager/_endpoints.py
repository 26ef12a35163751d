"""The one check every service's ``endpoint`` pair passes before anything connects.

An endpoint is where requests go, so it reaches every request line and Host header: a
control character, user info or query in it could split or redirect requests. Each
service refuses a bad one at construction, with the endpoint shown masked.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from storager._errors import PairInvalidError

__all__ = ["check_endpoint"]


def _shown_endpoint(endpoint: str) -> str:
    """The endpoint as an error may show it: user info and query masked, repr, truncated."""
    scheme, sep, rest = endpoint.partition("://")
    if "@" in rest:
        rest = "***@" + rest.rpartition("@")[2]
    shown = f"{scheme}{sep}{rest}"
    for mark in ("?", "#"):
        if mark in shown:
            shown = shown.partition(mark)[0] + mark + "***"
    return repr(shown[:80]) + ("..." if len(shown) > 80 else "")


def check_endpoint(service: str, endpoint: str) -> None:
    """Refuse an endpoint that is not ``http(s)://host[:port][/path]``.

    The port, when given, is 1 to 65535; user info (credentials belong in the
    ``credential`` pair), a query, a fragment and whitespace or control characters are
    refused. The error shows the endpoint with any user info and query masked.

    Raises:
        PairInvalidError: Naming the operation ``new``, the service, the pair and the
            endpoint.
    """

    def refuse(what: str) -> PairInvalidError:
        return PairInvalidError(
            "new",
            service,
            "",
            f"pair 'endpoint' must be http(s)://host[:port] ({what}): {_shown_endpoint(endpoint)}",
        )

    if not isinstance(endpoint, str):
        raise PairInvalidError("new", service, "", "pair 'endpoint' must be a str")
    if any(c.isspace() or not c.isprintable() for c in endpoint):
        raise refuse("it holds whitespace or a control character")
    try:
        url = urlsplit(endpoint)
        port = url.port
    except ValueError:
        raise refuse("the port must be a number from 1 to 65535") from None
    if url.scheme not in ("http", "https"):
        raise refuse(f"the scheme must be http or https, not {url.scheme[:16]!r}")
    if "@" in url.netloc:
        raise refuse("credentials belong in the credential pair, not the endpoint")
    if not url.hostname:
        raise refuse("the host is missing")
    if port == 0:
        raise refuse("the port must be a number from 1 to 65535")
    if url.query or url.fragment or endpoint.endswith(("?", "#")):
        raise refuse("a query or fragment is not allowed")
