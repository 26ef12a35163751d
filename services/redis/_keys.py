"""The key layout of one namespace: which Redis key holds what, and its hash tag.

Metadata keys share the hash tag ``{NS}``, so every key an atomic step touches lives in
one cluster slot; chunk keys carry no tag, so a large object's chunks spread over every
master of a cluster. Paths are store-absolute (``/a/b.txt``; directory markers end with
``/``) and go into keys as UTF-8.

The commit script (``_scripts``) builds the metadata keys' names from the manifest
key's hash tag itself, to send fewer arguments per write: a name changed here must be
changed there too (the tests of every operation would fail otherwise).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["DEFAULT_NAMESPACE", "Keys", "NamespaceError", "encode_path", "lex_prefix_range"]

DEFAULT_NAMESPACE = "storager"
_NAMESPACE = re.compile(r"[A-Za-z0-9._-]{1,64}")

#: No UTF-8 text holds this byte, so ``prefix + _AFTER_ALL`` sorts after every key that
#: starts with ``prefix`` (Redis compares members byte by byte).
_AFTER_ALL = b"\xff"


class NamespaceError(ValueError):
    """The namespace is not 1 to 64 letters, digits, '.', '_' or '-'."""


def encode_path(path: str) -> bytes:
    """Return a store-absolute path as the bytes Redis keys and members hold.

    Raises:
        UnicodeEncodeError: The path holds a lone surrogate (not valid UTF-8).
    """
    return path.encode("utf-8")


def lex_prefix_range(prefix: bytes) -> tuple[bytes, bytes]:
    """Return the ZRANGEBYLEX bounds of every member starting with ``prefix``."""
    return b"[" + prefix, b"(" + prefix + _AFTER_ALL


@dataclass(frozen=True, slots=True)
class Keys:
    """The keys of one namespace.

    Attributes:
        namespace: The namespace, already checked.
        index: Sorted Set of every path (files and directory markers), all scores 0.
        refs: Hash, generation -> how many manifests use it.
        chunk_counts: Hash, generation -> how many chunks it may have (an upper bound
            while it is being written, exact once committed).
        pending: Sorted Set, generation being written -> last time its writer was heard.
        doomed: Sorted Set, generation no manifest uses -> when it was released (or,
            for an object written with an expiry, when it expires).
        expiring: Sorted Set, path of an object written with an expiry -> its expiry.
        manifest_prefix: What every manifest key starts with (the path follows).
        staged_prefix: What the key of a manifest being committed starts with (the
            write's etag follows); it lives only inside the commit's transaction.
    """

    namespace: str
    index: bytes
    refs: bytes
    chunk_counts: bytes
    pending: bytes
    doomed: bytes
    expiring: bytes
    manifest_prefix: bytes
    staged_prefix: bytes
    _chunk_prefix: bytes

    @classmethod
    def for_namespace(cls, namespace: str) -> Keys:
        """Return the layout of ``namespace``.

        Raises:
            NamespaceError: The namespace has characters outside ``[A-Za-z0-9._-]``
                (a brace would change the hash tag), or is empty or too long.
        """
        if not _NAMESPACE.fullmatch(namespace):
            raise NamespaceError(
                "pair 'namespace' must be 1 to 64 letters, digits, '.', '_' or '-'"
            )
        tag = b"{" + namespace.encode("ascii") + b"}"
        return cls(
            namespace=namespace,
            index=tag + b":i",
            refs=tag + b":r",
            chunk_counts=tag + b":n",
            pending=tag + b":p",
            doomed=tag + b":g",
            expiring=tag + b":x",
            manifest_prefix=tag + b":m:",
            staged_prefix=tag + b":s:",
            _chunk_prefix=namespace.encode("ascii") + b":c:",
        )

    def manifest(self, path: bytes) -> bytes:
        """Return the key of the Hash that describes the object (or marker) at ``path``."""
        return self.manifest_prefix + path

    def staged(self, etag: str) -> bytes:
        """Return the key of the manifest that the commit of write ``etag`` stages."""
        return self.staged_prefix + etag.encode("ascii")

    def chunk(self, generation: bytes, number: int) -> bytes:
        """Return the key of chunk ``number`` (from 0) of ``generation``."""
        return b"%s%s:%d" % (self._chunk_prefix, generation, number)
