"""Prefixed: a store seen from a sub-path; ReadOnly: a store that refuses every change."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any, TypeVar, cast

from storager._errors import InvalidArgumentError, PermissionDeniedError
from storager._object import Multipart, Object, Part, StorageMeta
from storager._paths import join_dir, normalize_work_dir, relative_to, resolve
from storager._protocols import Segmenter, Storager, WriteData
from storager.combinators._base import (
    DELEGATE_MIXINS,
    MUTATING,
    Delegate,
    DelegateSegmenter,
    call_child,
    meet_capability,
    ops_of,
    prime,
)

__all__ = ["PrefixMap", "Prefixed", "ReadOnly", "refuse_change"]

T = TypeVar("T")


class PrefixMap:
    """How a view under a prefix maps paths, both ways; Prefixed and its async twin use it.

    Args:
        inner_wd: The inner store's work_dir.
        prefix: A directory relative to ``inner_wd`` (or absolute in the inner store).
        work_dir: The view's working directory, inside the prefix.
    """

    def __init__(self, inner_wd: str, prefix: str, work_dir: str) -> None:
        if not isinstance(prefix, str):
            raise InvalidArgumentError("new", "prefixed", "", "prefix must be a str")
        self.wd = normalize_work_dir(work_dir, "prefixed")
        self.inner_wd = inner_wd
        root = join_dir("new", "prefixed", inner_wd, prefix)
        self.root = root if root.endswith("/") else root + "/"

    def inner_path(self, op: str, path: str) -> str:
        """Map a caller's path to the inner store's (store-absolute)."""
        if op == "list" or not path:
            view = join_dir(op, "prefixed", self.wd, path)
        else:
            view = resolve(op, "prefixed", self.wd, path)
        return self.root + view[1:]

    def out(self, obj: Object) -> Object:
        """Map an inner object back to the caller's view."""
        obj = replace(obj, path=self.view(obj.path))
        if obj.link_target is not None:
            obj = replace(obj, link_target=self.view(obj.link_target))
        return obj

    def view(self, path: str) -> str:
        """Map an inner path (store-absolute, or relative to its work_dir) to the view's."""
        full = path if path.startswith("/") else self.inner_wd + path
        if full.startswith(self.root):
            return relative_to(self.wd, "/" + full[len(self.root) :])
        return path


def refuse_change(op: str, path: str) -> None:
    """Raise PermissionDeniedError for an operation that changes the store (ReadOnly)."""
    if op in MUTATING:
        raise PermissionDeniedError(op, "readonly", path, "the store is read-only")


class Prefixed(Delegate):
    """Show only what lies under ``prefix`` of another store, with no way out of it.

    The view is a store whose root is the prefix: paths are relative to its own
    ``work_dir`` or absolute from the prefix (``/a`` is ``<prefix>a``), and ``..``
    past the prefix raises PathInvalidError. Objects come back with paths as the
    view's caller sees them. The capabilities are the inner store's.

    Args:
        inner: The store to look into.
        prefix: A directory relative to the inner store's work_dir (or absolute in it).
        work_dir: The view's working directory, inside the prefix.
    """

    combinator = "prefixed"

    def __init__(self, inner: Storager, prefix: str, *, work_dir: str = "/") -> None:
        super().__init__(inner)
        self._map = PrefixMap(inner.metadata().work_dir, prefix, work_dir)
        self._wd, self._inner_wd, self._root = self._map.wd, self._map.inner_wd, self._map.root

    @property
    def prefix(self) -> str:
        """The view's root, store-absolute in the inner store (ends with ``/``)."""
        return self._root

    def describe_label(self) -> str:
        return f"prefixed {self._root}"

    def metadata(self) -> StorageMeta:
        meta = self._inner.metadata()
        caps = meet_capability([meta.capability], ops_of(self._capabilities()))
        return StorageMeta("prefixed", meta.name, self._wd, caps)

    def _capabilities(self) -> frozenset[type]:
        from storager.combinators._base import capabilities_of

        return capabilities_of(self)

    def _path(self, op: str, path: str) -> str:
        return self._map.inner_path(op, path)

    def _out(self, obj: Object) -> Object:
        return self._map.out(obj)


class _PrefixedSegmenter(DelegateSegmenter, Prefixed):
    """Uploads carry the view's store-absolute path; the inner path is derived again."""

    def _inner_upload(self, op: str, multipart: Multipart) -> Multipart:
        return Multipart(self._path(op, multipart.path), multipart.upload_id)

    def create_multipart(self, path: str, **pairs: Any) -> Multipart:
        inner = super().create_multipart(path, **pairs)
        full = inner.path if inner.path.startswith("/") else self._inner_wd + inner.path
        return Multipart("/" + full[len(self._root) :], inner.upload_id)

    def write_multipart(
        self, multipart: Multipart, number: int, data: WriteData, **pairs: Any
    ) -> Part:
        mp = self._inner_upload("write_multipart", multipart)
        return self._call(
            "write_multipart",
            multipart.path,
            lambda c: cast(Segmenter, c).write_multipart(mp, number, data, **pairs),
        )

    def complete_multipart(
        self, multipart: Multipart, parts: Sequence[Part], **pairs: Any
    ) -> Object:
        mp = self._inner_upload("complete_multipart", multipart)
        return self._out(
            self._call(
                "complete_multipart",
                multipart.path,
                lambda c: cast(Segmenter, c).complete_multipart(mp, parts, **pairs),
            )
        )

    def abort_multipart(self, multipart: Multipart, **pairs: Any) -> None:
        mp = self._inner_upload("abort_multipart", multipart)
        self._call(
            "abort_multipart",
            multipart.path,
            lambda c: cast(Segmenter, c).abort_multipart(mp, **pairs),
        )

    def list_multipart(self, multipart: Multipart, **pairs: Any) -> Iterator[Part]:
        mp = self._inner_upload("list_multipart", multipart)
        return self._call(
            "list_multipart",
            multipart.path,
            lambda c: prime(cast(Segmenter, c).list_multipart(mp, **pairs)),
        )


Prefixed._capability_mixins = {**DELEGATE_MIXINS, Segmenter: _PrefixedSegmenter}


class ReadOnly(Delegate):
    """Serve reads from another store; every change raises PermissionDeniedError.

    It has none of the capability protocols: each changes the store, and a Presigner
    must also sign writes.
    """

    combinator = "readonly"

    @classmethod
    def _allowed_capabilities(cls, *args: Any, **kwargs: Any) -> frozenset[type]:
        return frozenset()

    def _around(self, op: str, path: str, fn: Callable[[Storager], T]) -> T:
        refuse_change(op, path)
        return call_child(self._inner, op, path, fn)
