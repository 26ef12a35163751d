"""Router: stores mounted under path prefixes; the longest matching prefix wins.

``Router({"logs/": fs_store, "": s3_store})`` sends ``logs/app.txt`` to ``fs_store``
as ``app.txt`` and everything else to ``s3_store``. Copy and move across mounts
stream through the client (``dst.write(p, src.open_reader(p))``, then a delete for
move); within a mount they use the store's own copy and move when it has them.
Listing a directory that holds mount points shows each mount as a directory.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any, BinaryIO, cast

from storager._errors import InvalidArgumentError
from storager._object import Object, ObjectMode, StorageMeta
from storager._paths import join_dir, normalize_work_dir, relative_to, resolve
from storager._protocols import Appender, Copier, Direr, Mover, Storager, WriteData
from storager.combinators._base import (
    Wrapper,
    call_child,
    capabilities_of,
    common_capabilities,
    meet_capability,
    ops_of,
    served_by,
)
from storager.combinators._trace import span, tracing

__all__ = ["Router"]


def _normalize_prefix(prefix: str) -> str:
    if not isinstance(prefix, str):
        raise InvalidArgumentError("new", "router", "", "mount prefixes must be str")
    if not prefix or prefix == "/":
        return ""
    cleaned = join_dir("new", "router", "/", prefix)
    return cleaned.strip("/") + "/"


class Router(Wrapper):
    """Mount stores under path prefixes.

    Args:
        mounts: Prefix (``"logs/"``; ``""`` for the root) to store. Paths inside a
            mount are relative to the mounted store's ``work_dir``.
        work_dir: The router's working directory: relative paths start there,
            absolute ones (``/logs/a``) from the router's root; ``..`` cannot leave it.

    A path no mount covers raises
    InvalidArgumentError. The router is a Copier and a Mover always (crossing mounts
    streams through the client), and an Appender or Direr when every mount is.
    """

    combinator = "router"

    def __init__(self, mounts: Mapping[str, Storager], *, work_dir: str = "/") -> None:
        self._wd = normalize_work_dir(work_dir, "router")
        if not isinstance(mounts, Mapping) or not mounts:
            raise InvalidArgumentError("new", "router", "", "mounts must be a non-empty mapping")
        table: dict[str, Storager] = {}
        for prefix, store in mounts.items():
            if not isinstance(store, Storager):
                raise InvalidArgumentError("new", "router", "", f"mount {prefix!r} is no Storager")
            key = _normalize_prefix(prefix)
            if key in table:
                raise InvalidArgumentError("new", "router", "", f"mount {prefix!r} given twice")
            table[key] = store
        # Longest first, so the first match wins.
        self._mounts = sorted(table.items(), key=lambda kv: -len(kv[0]))

    @classmethod
    def _allowed_capabilities(cls, mounts: object = None, *a: Any, **k: Any) -> frozenset[type]:
        if not isinstance(mounts, Mapping) or not mounts:
            return frozenset()
        common = common_capabilities(mounts.values())
        return frozenset({Copier, Mover}) | (common & frozenset({Appender, Direr}))

    def children(self) -> Mapping[str, Storager]:
        return {prefix or "/": store for prefix, store in sorted(self._mounts)}

    def describe_label(self) -> str:
        return "router"

    def metadata(self) -> StorageMeta:
        metas = [store.metadata() for _, store in self._mounts]
        caps = meet_capability([m.capability for m in metas], ops_of(capabilities_of(self)))
        ops = dict(caps.operations)
        for op in ("copy", "move"):
            ops.setdefault(op, frozenset())
        fields = {f: getattr(caps, f) for f in caps.__slots__ if f != "operations"}
        fields["list_sorted"] = False
        fields["copy_server_side"] = False
        return StorageMeta("router", "", self._wd, type(caps)(operations=ops, **fields))

    # -- routing ------------------------------------------------------------------------

    def _route(self, op: str, path: str, *, directory: bool = False) -> tuple[str, Storager, str]:
        """Return the mount prefix, its store, and the path inside that store."""
        if directory:
            full = join_dir(op, "router", self._wd, path)
        else:
            full = resolve(op, "router", self._wd, path)
        key = full[1:]
        for prefix, store in self._mounts:
            if key.startswith(prefix) or (directory and key + "/" == prefix):
                return prefix, store, key[len(prefix) :]
        raise InvalidArgumentError(op, "router", path, "no mount covers this path")

    def _out(self, prefix: str, obj: Object) -> Object:
        if obj.path.startswith("/"):
            return obj
        return replace(obj, path=relative_to(self._wd, "/" + prefix + obj.path))

    def _traced(self, op: str, path: str) -> contextlib.AbstractContextManager[None]:
        return span("router", op, path) if tracing() else contextlib.nullcontext()

    def _on(self, op: str, path: str, fn: Any, **kw: Any) -> Any:
        prefix, store, inner = self._route(op, path, **kw)
        served_by.set(prefix or "/")
        return prefix, call_child(store, op, path, lambda s: fn(s, inner))

    # -- Storager -----------------------------------------------------------------------

    def read(self, path: str, **pairs: Any) -> bytes:
        with self._traced("read", path):
            return cast(bytes, self._on("read", path, lambda s, p: s.read(p, **pairs))[1])

    def open_reader(self, path: str, **pairs: Any) -> BinaryIO:
        with self._traced("open_reader", path):
            return cast(
                BinaryIO, self._on("open_reader", path, lambda s, p: s.open_reader(p, **pairs))[1]
            )

    def stat(self, path: str, **pairs: Any) -> Object:
        with self._traced("stat", path):
            key = resolve("stat", "router", self._wd, path)[1:]
            if any(prefix and (prefix == key or prefix == key + "/") for prefix, _ in self._mounts):
                return Object(relative_to(self._wd, "/" + key.rstrip("/") + "/"), ObjectMode.DIR)
            prefix, obj = self._on("stat", path, lambda s, p: s.stat(p, **pairs))
            return self._out(prefix, obj)

    def write(self, path: str, data: WriteData, **pairs: Any) -> Object:
        with self._traced("write", path):
            prefix, obj = self._on("write", path, lambda s, p: s.write(p, data, **pairs))
            return self._out(prefix, obj)

    def delete(self, path: str, **pairs: Any) -> None:
        with self._traced("delete", path):
            self._on("delete", path, lambda s, p: s.delete(p, **pairs))

    def list(self, path: str = "", **pairs: Any) -> Iterator[Object]:
        with self._traced("list", path):
            if pairs.get("list_mode") == "prefix":
                return self._list_prefix(path, pairs)
            return self._list_dir(path, pairs)

    def _list_dir(self, path: str, pairs: dict[str, Any]) -> Iterator[Object]:
        prefix, store, inner = self._route("list", path, directory=True)
        base = join_dir("list", "router", self._wd, path)[1:]
        base = base if not base or base.endswith("/") else base + "/"
        mount_dirs = sorted(
            {
                base + m[len(base) :].split("/", 1)[0] + "/"
                for m, _ in self._mounts
                if m and m != base and m.startswith(base)
            }
        )
        listing = store.list(inner, **pairs)

        def merged() -> Iterator[Object]:
            seen: set[str] = set()
            for obj in listing:
                out = self._out(prefix, obj)
                seen.add(out.path)
                # An object shadowed by a longer mount is not reachable: hide it.
                if self._route("list", out.path.rstrip("/") or "/", directory=True)[0] != prefix:
                    continue
                yield out
            for d in mount_dirs:
                shown = relative_to(self._wd, "/" + d)
                if shown not in seen:
                    yield Object(shown, ObjectMode.DIR)

        return merged()

    def _list_prefix(self, path: str, pairs: dict[str, Any]) -> Iterator[Object]:
        key = join_dir("list", "router", self._wd, path)[1:]

        def walk() -> Iterator[Object]:
            for prefix, store in sorted(self._mounts):
                if prefix.startswith(key):
                    inner = ""
                elif key.startswith(prefix):
                    inner = key[len(prefix) :]
                else:
                    continue
                for obj in store.list(inner, **pairs):
                    out = self._out(prefix, obj)
                    if self._route("list", out.path, directory=True)[0] == prefix:
                        yield out

        return walk()

    def _stream(self, op: str, src: str, dst: str, pairs: dict[str, Any]) -> None:
        sp, s_store, s_path = self._route(op, src)
        dp, d_store, d_path = self._route(op, dst)
        if s_store is d_store and sp == dp and isinstance(s_store, Copier | Mover):
            if op == "copy" and isinstance(s_store, Copier):
                call_child(
                    s_store, op, src, lambda s: cast(Copier, s).copy(s_path, d_path, **pairs)
                )
                return
            if op == "move" and isinstance(s_store, Mover):
                call_child(s_store, op, src, lambda s: cast(Mover, s).move(s_path, d_path, **pairs))
                return
        if pairs:
            raise InvalidArgumentError(op, "router", src, "pairs are not taken across mounts")
        with s_store.open_reader(s_path) as reader:
            d_store.write(d_path, reader)
        if op == "move":
            s_store.delete(s_path)


class _RouterCopier(Router, Copier):
    def copy(self, src: str, dst: str, **pairs: Any) -> None:
        with self._traced("copy", src):
            self._stream("copy", src, dst, pairs)


class _RouterMover(Router, Mover):
    def move(self, src: str, dst: str, **pairs: Any) -> None:
        with self._traced("move", src):
            self._stream("move", src, dst, pairs)


class _RouterAppender(Router, Appender):
    def append(self, path: str, data: WriteData, **pairs: Any) -> Object:
        with self._traced("append", path):
            prefix, obj = self._on(
                "append", path, lambda s, p: cast(Appender, s).append(p, data, **pairs)
            )
            return self._out(prefix, obj)


class _RouterDirer(Router, Direr):
    def create_dir(self, path: str, **pairs: Any) -> Object:
        with self._traced("create_dir", path):
            prefix, obj = self._on(
                "create_dir", path, lambda s, p: cast(Direr, s).create_dir(p, **pairs)
            )
            return self._out(prefix, obj)


Router._capability_mixins = {
    Copier: _RouterCopier,
    Mover: _RouterMover,
    Appender: _RouterAppender,
    Direr: _RouterDirer,
}
