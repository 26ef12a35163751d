"""What a path resolves to, so two arguments naming one object are seen as one.

Two arguments can open two store instances on the same data: ``/tmp/f`` and
``fs:///tmp/f?work_dir=/``, or a ``--config`` tree rooted at a local directory and a plain
path into it. Comparing connection strings misses that, and a copy-then-delete would
stream an object onto itself and then delete it. :class:`Resolver` turns a store and a
path into a :class:`Place`: the store's identity (service, bucket or root, endpoint)
and the normalized absolute path inside it; for fs, the real local path.
"""

from __future__ import annotations

import os
import posixpath
import sys
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from storager._protocols import Storager
from storager._service import Service

__all__ = ["Place", "Resolver"]


@dataclass(frozen=True, slots=True)
class Place:
    """Where a path lands: the store's identity and the absolute path inside it."""

    store: tuple[object, ...]
    path: str

    def same(self, other: Place) -> bool:
        """Whether both name the same object (or directory)."""
        return self.store == other.store and self.path == other.path

    def contains(self, other: Place) -> bool:
        """Whether ``other`` is this place or lies under it."""
        if self.store != other.store:
            return False
        top = self.path.rstrip("/") + "/"
        return other.path == self.path or other.path.startswith(top)


class Resolver:
    """Resolve the paths of one store (as the commands address it) to places.

    Args:
        store: The store the command opened (a service, a combinator or a tree view).
        store_url: The connection string it was opened from, or ``""`` (a tree); its
            ``endpoint`` pair and host tell two stores of one service apart.
    """

    def __init__(self, store: Storager, store_url: str = "") -> None:
        inner = _tree_inner(store) or store
        # A tree view drops the leading "/": paths are relative to the tree's work_dir.
        self._relative = inner is not store
        meta = inner.metadata()
        self._work_dir = meta.work_dir or "/"
        self._local_root = ""
        if not isinstance(inner, Service) or meta.service == "memory":
            # Data of its own (memory) or spread over several stores (combinators):
            # only the same instance is the same place.
            self._key: tuple[object, ...] = ("instance", id(inner))
        elif meta.service == "fs":
            self._key = ("fs",)
            self._local_root = meta.name or "/"
        else:
            self._key = (meta.service, meta.name, *_endpoint(store_url, meta.name))

    def place(self, path: str) -> Place:
        """Return where ``path`` lands (``path`` as the commands pass it to the store)."""
        relative = path.lstrip("/") if self._relative else path
        absolute = posixpath.normpath(posixpath.join(self._work_dir, relative))
        absolute = "/" + absolute.lstrip("/")
        if self._local_root:
            local = os.path.join(self._local_root, absolute.lstrip("/"))
            return Place(self._key, os.path.realpath(local))
        return Place(self._key, absolute)


def _tree_inner(store: Storager) -> Storager | None:
    """Return the tree inside ``store`` when it is a ``--config`` tree view, else None.

    The view's module (and the combinators under it) loads only with ``--config``; when
    it was never loaded, no store can be a view, and the check costs no import.
    """
    trees = sys.modules.get("storager.cli._trees")
    if trees is not None and isinstance(store, trees.TreeView):
        inner: Storager = store.inner
        return inner
    return None


def _endpoint(store_url: str, name: str) -> tuple[str, str]:
    """Return the URL's ``endpoint`` pair and host (``""`` when not given or the name)."""
    if not store_url or "://" not in store_url:
        return "", ""
    parts = urlsplit(store_url)
    endpoint = parse_qs(parts.query).get("endpoint", [""])[0].rstrip("/")
    host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    return endpoint, "" if host == name else host
