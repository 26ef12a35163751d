"""The one check on pairs that travel as HTTP headers or metadata entries.

``content_type``, ``storage_class``, ``if_match``, ``user_metadata`` and the other pairs
marked ``header = true`` in ``definitions/pairs.toml`` end up in a request's header
block on some service (S3 and Azure send them as headers; gcsfs puts them in a
multipart body whose parts are separated by lines). A line break in such a value
could add headers, smuggle a second request on a kept-alive connection, or rewrite
the stored bytes. Generated service code calls :func:`check_header` (and
:func:`check_header_map` for ``user_metadata``) on every such pair, after its type
check and before anything is sent, on every service, so the rule is the same
everywhere and a Mirror or Failover across services cannot store on one target what
another refuses.

The rule:

- a value holds printable ASCII only (``0x20``-``0x7e``): control characters
  (``\\x00``-``\\x1f``, ``\\x7f``) are refused, and so is every character above
  ``0x7e``. ASCII is the only text every service carries verbatim: Azure refuses the
  signature of a request with a non-ASCII header, botocore refuses non-ASCII
  metadata, S3 decodes RFC 2047 words in metadata, and RFC 7230 calls bytes above
  ``0x7e`` obsolete. Callers that need other text encode it themselves (for
  example ``urllib.parse.quote``) and decode it after ``stat``;
- a metadata key is an RFC 7230 token (letters, digits and ``!#$%&'*+-.^_`|~``, at
  least one character).

Refusals are :class:`PairInvalidError` naming the operation, the path and the pair;
the offending value is shown as a truncated ``repr``, never raw.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from storager._errors import PairInvalidError

__all__ = ["check_header", "check_header_map", "header_problem", "shown_value"]

#: Anything a header value may not hold: control characters and non-ASCII.
_NOT_PRINTABLE_ASCII = re.compile(r"[^\x20-\x7e]")
#: An RFC 7230 token (``tchar+``).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: How many characters of an offending value an error shows.
_SHOWN = 40


def shown_value(value: str) -> str:
    """Return ``value`` as a ``repr`` of at most about 40 characters, safe to print."""
    if len(value) <= _SHOWN:
        return repr(value)
    return repr(value[:_SHOWN]) + f"... ({len(value)} characters)"


def header_problem(value: str) -> str | None:
    """Say what makes ``value`` unfit for a header, or return None when it is fit."""
    bad = _NOT_PRINTABLE_ASCII.search(value)
    if bad is None:
        return None
    char = bad.group()
    what = "a control character" if char < " " or char == "\x7f" else "a non-ASCII character"
    return f"holds {what} ({char!r} at {bad.start()}): {shown_value(value)}"


def check_header(op: str, service: str, path: str, name: str, value: str) -> None:
    """Raise PairInvalidError unless ``value`` is printable ASCII.

    Args:
        op: The operation the pair was given to (``"new"`` for init pairs).
        service: The service's name.
        path: The path the caller gave, or ``""``.
        name: The pair's name.
        value: The pair's value, already checked to be a str.
    """
    if _NOT_PRINTABLE_ASCII.search(value) is None:
        return
    problem = header_problem(value)
    raise PairInvalidError(
        op, service, path, f"pair {name!r} {problem}; header values must be printable ASCII"
    )


def check_header_map(op: str, service: str, path: str, name: str, value: Mapping[str, str]) -> None:
    """Raise PairInvalidError unless every key is a token and every value printable ASCII.

    Args:
        op: The operation the pair was given to.
        service: The service's name.
        path: The path the caller gave, or ``""``.
        name: The pair's name.
        value: The pair's value, already checked to map str to str.
    """
    for key, item in value.items():
        if _TOKEN.fullmatch(key) is None:
            raise PairInvalidError(
                op,
                service,
                path,
                f"pair {name!r} has key {shown_value(key)}, which is not an RFC 7230 token "
                "(letters, digits and !#$%&'*+-.^_`|~)",
            )
        if _NOT_PRINTABLE_ASCII.search(item) is not None:
            raise PairInvalidError(
                op,
                service,
                path,
                f"pair {name!r} key {key!r} {header_problem(item)}; "
                "header values must be printable ASCII",
            )
