"""How a view under a prefix maps paths, and ReadOnly's refusal: shared by both forms."""

from __future__ import annotations

from dataclasses import replace

from storager._errors import InvalidArgumentError, PermissionDeniedError
from storager._object import Object
from storager._paths import join_dir, normalize_work_dir, relative_to, resolve
from storager.combinators._base import MUTATING

__all__ = ["PrefixMap", "refuse_change"]


class PrefixMap:
    """How a view under a prefix maps paths, both ways; both forms of Prefixed use it.

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
