"""Object keys: which S3 keys the gateway accepts, and the store path of each.

A key maps to the store path with the same text, relative to the store's work_dir. Keys
that a store would read differently from S3 are refused rather than aliased: a leading
``/``, an empty, ``.`` or ``..`` segment, a backslash (stores normalise it to ``/``),
control characters (XML 1.0 cannot carry most of them in a listing), more than 1,024
bytes, and the gateway's own reserved prefix for multipart parts.
"""

from __future__ import annotations

import re

from storager.gateway._errors import S3Error

__all__ = ["MAX_KEY_BYTES", "RESERVED_PREFIX", "store_path"]

MAX_KEY_BYTES = 1024
#: Where the gateway keeps multipart parts on stores that have no Segmenter.
RESERVED_PREFIX = ".storager-uploads/"
#: Control characters, and what XML 1.0 cannot carry (surrogates, U+FFFE, U+FFFF): a key
#: holding one could be stored but never named in a listing or an upload's answer.
_CONTROL = re.compile("[\x00-\x1f\x7f\ud800-\udfff\ufffe\uffff]")


def store_path(key: str) -> str:
    """Return the store path of ``key``, or raise InvalidArgument naming what is wrong."""
    if not key:
        raise S3Error("InvalidArgument", "the object key is empty")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise S3Error("KeyTooLongError", "the object key is longer than 1,024 bytes", status=400)
    if _CONTROL.search(key):
        raise S3Error(
            "InvalidArgument", "the object key holds a control character or one XML cannot carry"
        )
    if "\\" in key or key.startswith("/"):
        raise S3Error("InvalidArgument", "the object key starts with '/' or holds a backslash")
    segments = key.split("/")
    if any(segment in ("", ".", "..") for segment in segments[:-1]) or segments[-1] in (".", ".."):
        raise S3Error("InvalidArgument", "the object key holds an empty, '.' or '..' segment")
    if key.startswith(RESERVED_PREFIX):
        raise S3Error("InvalidArgument", f"keys under {RESERVED_PREFIX} are the gateway's own")
    return key
