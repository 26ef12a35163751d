"""Turn a command-line argument into a store and an object path inside it.

An argument names an object, not a store. ``scheme://host/some/path?pair=value`` opens
the store ``scheme://host?pair=value`` at its top and names the object ``/some/path``:

* services whose connection-string path fills ``work_dir`` (memory, s3, gcs, azblob)
  open with no ``work_dir``, so the URL path is the object path;
* services whose path fills ``root`` (fs, sftp) open at root ``/``, so the URL path is
  the object path within the whole file system;
* an argument without ``://`` is a local path and means fs.

Query pairs stay store pairs. A trailing ``/`` names a directory. The mapping reads the
service's ``connection`` form, so a new service needs no change here.

With ``--config tree.toml``, ``NAME:path`` names ``path`` in the tree ``NAME`` of that
file (see ``storager/cli/_trees.py``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from storager._errors import (
    ConnectionStringInvalidError,
    PairInvalidError,
    PairRequiredError,
    PairUnsupportedError,
    ServiceNotRegisteredError,
)
from storager._protocols import Storager
from storager._registry import open as open_store
from storager._registry import redact_url, service_class

if TYPE_CHECKING:
    from storager.tree import TreeFile

__all__ = ["Location", "Stores", "split_url"]


@dataclass(frozen=True, slots=True)
class Location:
    """An argument split into the store to open and the object it names.

    Attributes:
        arg: The argument as given (for messages; secrets redacted).
        store_url: The connection string of the store.
        path: The store-absolute object path; ``"/"`` is the store's top.
        root_mapped: Whether the service maps the URL path to ``root`` (fs, sftp):
            its top is then a whole file system.
        tree: The tree of the ``--config`` file the argument names, or ``""``; its
            ``store_url`` is then ``tree:NAME``.
    """

    arg: str
    store_url: str
    path: str
    root_mapped: bool = False
    tree: str = ""

    @property
    def is_dir(self) -> bool:
        """Whether the argument names a directory (a trailing ``/``, or the top)."""
        return self.path.endswith("/")


def split_url(arg: str) -> Location:
    """Split a command-line argument into a store URL and an object path.

    Raises:
        ConnectionStringInvalidError: The argument is empty or its URL is malformed.
        ServiceNotRegisteredError: No service handles the URL's scheme.
    """
    if not arg:
        raise ConnectionStringInvalidError("open", "", "", "empty URL or path")
    if "://" not in arg:
        local = os.path.abspath(os.path.expanduser(arg))
        if arg.endswith(("/", os.sep)) and not local.endswith("/"):
            local += "/"
        return Location(arg, "fs:///", local, root_mapped=True)
    try:
        parts = urlsplit(arg)
        parts.port  # noqa: B018 - parsing the port is what raises on a bad one
    except ValueError as exc:
        raise ConnectionStringInvalidError(
            "open", "", redact_url(arg), f"malformed URL ({exc})"
        ) from None
    scheme = parts.scheme.lower()
    if not scheme:
        raise ConnectionStringInvalidError("open", "", redact_url(arg), "missing scheme")
    try:
        form = service_class(scheme).connection
    except ServiceNotRegisteredError as exc:
        raise ServiceNotRegisteredError("open", "", redact_url(arg), exc.reason) from exc
    path = "/" + unquote(parts.path).lstrip("/")
    # root-mapped services open at "/"; work_dir-mapped ones (and services whose URL
    # takes no path) open at their top: either way the URL path is the object path.
    store_path = "/" if form.path == "root" else ""
    store_url = f"{scheme}://{parts.netloc}{store_path}"
    if parts.query:
        store_url += f"?{parts.query}"
    return Location(redact_url(arg), store_url, path, root_mapped=form.path == "root")


_OPEN_ERRORS = (
    ConnectionStringInvalidError,
    PairInvalidError,
    PairRequiredError,
    PairUnsupportedError,
    ServiceNotRegisteredError,
)


@dataclass
class Stores:
    """Open each store once per command and close them all at the end.

    Attributes:
        trees: The ``--config`` file, whose trees arguments may name as ``NAME:path``.
    """

    _open: dict[str, Storager] = field(default_factory=dict)
    trees: TreeFile | None = None

    def locate(self, arg: str) -> Location:
        """Split an argument: ``NAME:path`` for a tree of ``trees``, else :func:`split_url`."""
        if self.trees is not None:
            # Loaded only with --config: the tree view loads the combinators.
            from storager.cli._trees import tree_location

            found = tree_location(arg, self.trees)
            if found is not None:
                name, path = found
                return Location(arg, f"tree:{name}", path, tree=name)
        return split_url(arg)

    def get(self, location: Location) -> Storager:
        """Return the store for ``location``, opening it on first use."""
        store = self._open.get(location.store_url)
        if store is None and location.tree and self.trees is not None:
            from storager.cli._trees import TreeView

            store = self._open[location.store_url] = TreeView(self.trees.build(location.tree))
        if store is None:
            try:
                store = open_store(location.store_url)
            except _OPEN_ERRORS as exc:
                # Name the argument the user typed, not the store URL made from it.
                raise type(exc)("open", "", location.arg, exc.reason) from exc
            self._open[location.store_url] = store
        return store

    def close(self) -> None:
        """Close every store opened so far, and the trees of the ``--config`` file."""
        stores, self._open = list(self._open.values()), {}
        for store in stores:
            store.close()
        if self.trees is not None:
            self.trees.close()

    def __enter__(self) -> Stores:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
