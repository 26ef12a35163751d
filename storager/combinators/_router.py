"""Router: stores mounted under path prefixes; the longest matching prefix wins.

``Router({"logs/": fs_store, "": s3_store})`` sends ``logs/app.txt`` to ``fs_store``
as ``app.txt`` and everything else to ``s3_store``. Copy and move across mounts
stream through the client (``dst.write(p, src.open_reader(p))``, then a delete for
move); within a mount they use the store's own copy and move when it has them.
Listing a directory that holds mount points shows each mount as a directory.

Multipart uploads, links and presigned URLs stay inside one mount: the router is a
Segmenter, Linker or Presigner when every mount is. An upload's ``path`` is
router-absolute (``/logs/app.txt``), so later calls find the mount again; a link
whose target lies in another mount is refused.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any, BinaryIO, Generic, TypeVar, cast

from storager._capability import Capability
from storager._errors import InvalidArgumentError, PairUnsupportedError
from storager._object import Multipart, Object, ObjectMode, Part, StorageMeta
from storager._paths import join_dir, normalize_work_dir, relative_to, resolve
from storager._protocols import (
    Appender,
    Copier,
    Direr,
    Linker,
    Mover,
    Presigner,
    Segmenter,
    Storager,
    WriteData,
)
from storager.combinators._base import (
    Wrapper,
    call_child,
    capabilities_of,
    common_capabilities,
    meet_capability,
    ops_of,
    prime,
    served_by,
)
from storager.combinators._trace import span, tracing

__all__ = ["MountTable", "Router"]

S = TypeVar("S")


#: Capabilities the router has when every mount has them.
_ALL_MOUNTS = frozenset({Appender, Direr, Segmenter, Linker, Presigner})


def _normalize_prefix(prefix: str) -> str:
    if not isinstance(prefix, str):
        raise InvalidArgumentError("new", "router", "", "mount prefixes must be str")
    if not prefix or prefix == "/":
        return ""
    cleaned = join_dir("new", "router", "/", prefix)
    return cleaned.strip("/") + "/"


class MountTable(Generic[S]):
    """The mounts of a router and how paths map onto them; Router and its async twin use it.

    Args:
        mounts: Prefix to store (already checked to be stores).
        work_dir: The router's working directory.
        wd_of: Returns a mounted store's work_dir.
    """

    def __init__(self, mounts: Mapping[str, S], work_dir: str, wd_of: Callable[[S], str]) -> None:
        self.wd = normalize_work_dir(work_dir, "router")
        table: dict[str, S] = {}
        for prefix, store in mounts.items():
            key = _normalize_prefix(prefix)
            if key in table:
                raise InvalidArgumentError("new", "router", "", f"mount {prefix!r} given twice")
            table[key] = store
        # Longest first, so the first match wins.
        self.mounts = sorted(table.items(), key=lambda kv: -len(kv[0]))
        self.mount_wds = {prefix: wd_of(store) for prefix, store in table.items()}

    def children(self) -> dict[str, S]:
        """The mounted stores by prefix (``/`` for the root), in prefix order."""
        return {prefix or "/": store for prefix, store in sorted(self.mounts)}

    def route(self, op: str, path: str, *, directory: bool = False) -> tuple[str, S, str]:
        """Return the mount prefix, its store, and the path inside that store."""
        if directory:
            full = join_dir(op, "router", self.wd, path)
        else:
            full = resolve(op, "router", self.wd, path)
        key = full[1:]
        for prefix, store in self.mounts:
            if key.startswith(prefix) or (directory and key + "/" == prefix):
                return prefix, store, key[len(prefix) :]
        raise InvalidArgumentError(op, "router", path, "no mount covers this path")

    def out(self, prefix: str, obj: Object) -> Object:
        """Map a mounted store's object to the router's view."""
        if not obj.path.startswith("/"):
            obj = replace(obj, path=relative_to(self.wd, "/" + prefix + obj.path))
        if obj.link_target is not None and not obj.link_target.startswith("/"):
            obj = replace(obj, link_target=relative_to(self.wd, "/" + prefix + obj.link_target))
        return obj

    def mount_point(self, path: str) -> Object | None:
        """Return the directory ``path`` is when it names a mount point, else None."""
        key = resolve("stat", "router", self.wd, path)[1:]
        if any(prefix and (prefix == key or prefix == key + "/") for prefix, _ in self.mounts):
            return Object(relative_to(self.wd, "/" + key.rstrip("/") + "/"), ObjectMode.DIR)
        return None

    def mount_dirs(self, path: str) -> list[str]:
        """Return the directories mount points add to a dir listing of ``path`` (as shown)."""
        base = join_dir("list", "router", self.wd, path)[1:]
        base = base if not base or base.endswith("/") else base + "/"
        dirs = sorted(
            {
                base + m[len(base) :].split("/", 1)[0] + "/"
                for m, _ in self.mounts
                if m and m != base and m.startswith(base)
            }
        )
        return [relative_to(self.wd, "/" + d) for d in dirs]

    def reachable(self, prefix: str, out: Object, *, directory_listing: bool) -> bool:
        """Whether a listed object is served by its mount (not shadowed by a longer one)."""
        path = (out.path.rstrip("/") or "/") if directory_listing else out.path
        return self.route("list", path, directory=True)[0] == prefix

    def prefix_walk(self, path: str) -> list[tuple[str, S, str]]:
        """Return the mounts a prefix listing of ``path`` visits, with the inner prefix."""
        key = join_dir("list", "router", self.wd, path)[1:]
        walk: list[tuple[str, S, str]] = []
        for prefix, store in sorted(self.mounts):
            if prefix.startswith(key):
                walk.append((prefix, store, ""))
            elif key.startswith(prefix):
                walk.append((prefix, store, key[len(prefix) :]))
        return walk

    def upload(self, op: str, multipart: Multipart) -> tuple[str, S, Multipart]:
        """Return the mount of a router upload and the upload as the mount knows it."""
        prefix, store, inner = self.route(op, multipart.path)
        return prefix, store, Multipart(self.mount_wds[prefix] + inner, multipart.upload_id)

    def upload_out(self, prefix: str, multipart: Multipart) -> Multipart:
        """Return a mount's upload as the router's (its path in the router's tree)."""
        wd = self.mount_wds[prefix]
        path = multipart.path
        inner = path[len(wd) :] if path.startswith(wd) else path.lstrip("/")
        return Multipart("/" + prefix + inner, multipart.upload_id)

    def link_target(self, path: str, target: str) -> str:
        """Return ``target`` as the mount of ``path`` knows it; a link stays in its mount.

        Raises:
            InvalidArgumentError: ``target`` is in another mount.
        """
        prefix, _, _ = self.route("create_link", path)
        t_prefix, _, t_inner = self.route("create_link", target)
        if t_prefix != prefix:
            raise InvalidArgumentError(
                "create_link", "router", path, "a link cannot point into another mount"
            )
        return t_inner

    def check_crossing_pairs(
        self, op: str, src: str, dst_prefix: str, accepted: Capability, pairs: Mapping[str, Any]
    ) -> None:
        """Refuse, by name, a pair the destination mount's ``write`` does not accept."""
        for name in pairs:
            if not accepted.accepts("write", name):
                raise PairUnsupportedError(
                    op,
                    "router",
                    src,
                    f"pair {name!r} is not taken across mounts: the destination "
                    f"mount {dst_prefix or '/'!r} does not accept it for write",
                )


class Router(Wrapper):
    """Mount stores under path prefixes.

    Args:
        mounts: Prefix (``"logs/"``; ``""`` for the root) to store. Paths inside a
            mount are relative to the mounted store's ``work_dir``.
        work_dir: The router's working directory: relative paths start there,
            absolute ones (``/logs/a``) from the router's root; ``..`` cannot leave it.

    A path no mount covers raises InvalidArgumentError. The router is a Copier and a
    Mover always (crossing mounts streams through the client, passing on the pairs
    the destination's ``write`` accepts), and an Appender, Direr, Segmenter, Linker
    or Presigner when every mount is.
    """

    combinator = "router"

    def __init__(self, mounts: Mapping[str, Storager], *, work_dir: str = "/") -> None:
        if not isinstance(mounts, Mapping) or not mounts:
            raise InvalidArgumentError("new", "router", "", "mounts must be a non-empty mapping")
        for prefix, store in mounts.items():
            if not isinstance(store, Storager):
                raise InvalidArgumentError("new", "router", "", f"mount {prefix!r} is no Storager")
        self._table = MountTable(mounts, work_dir, lambda store: store.metadata().work_dir)
        self._wd = self._table.wd
        self._mounts = self._table.mounts
        self._mount_wds = self._table.mount_wds

    @classmethod
    def _allowed_capabilities(cls, mounts: object = None, *a: Any, **k: Any) -> frozenset[type]:
        if not isinstance(mounts, Mapping) or not mounts:
            return frozenset()
        common = common_capabilities(mounts.values())
        return frozenset({Copier, Mover}) | (common & _ALL_MOUNTS)

    def children(self) -> Mapping[str, Storager]:
        return self._table.children()

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
        return self._table.route(op, path, directory=directory)

    def _out(self, prefix: str, obj: Object) -> Object:
        return self._table.out(prefix, obj)

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
            mount = self._table.mount_point(path)
            if mount is not None:
                return mount
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
        mount_dirs = self._table.mount_dirs(path)
        listing = store.list(inner, **pairs)

        def merged() -> Iterator[Object]:
            seen: set[str] = set()
            for obj in listing:
                out = self._out(prefix, obj)
                seen.add(out.path)
                # An object shadowed by a longer mount is not reachable: hide it.
                if self._table.reachable(prefix, out, directory_listing=True):
                    yield out
            for shown in mount_dirs:
                if shown not in seen:
                    yield Object(shown, ObjectMode.DIR)

        return merged()

    def _list_prefix(self, path: str, pairs: dict[str, Any]) -> Iterator[Object]:
        walk_plan = self._table.prefix_walk(path)

        def walk() -> Iterator[Object]:
            for prefix, store, inner in walk_plan:
                for obj in store.list(inner, **pairs):
                    out = self._out(prefix, obj)
                    if self._table.reachable(prefix, out, directory_listing=False):
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
        # Across mounts the bytes go through the destination's write: pass on the
        # pairs it accepts there (sync, content_type...); refuse the others by name.
        self._table.check_crossing_pairs(op, src, dp, d_store.metadata().capability, pairs)
        with s_store.open_reader(s_path) as reader:
            d_store.write(d_path, reader, **pairs)
        if op == "move":
            s_store.delete(s_path)

    def _upload(self, op: str, multipart: Multipart) -> tuple[str, Storager, Multipart]:
        """Return the mount of a router upload and the upload as the mount knows it."""
        return self._table.upload(op, multipart)


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


class _RouterSegmenter(Router, Segmenter):
    def create_multipart(self, path: str, **pairs: Any) -> Multipart:
        with self._traced("create_multipart", path):
            prefix, mp = self._on(
                "create_multipart",
                path,
                lambda s, p: cast(Segmenter, s).create_multipart(p, **pairs),
            )
            return self._table.upload_out(prefix, mp)

    def write_multipart(
        self, multipart: Multipart, number: int, data: WriteData, **pairs: Any
    ) -> Part:
        with self._traced("write_multipart", multipart.path):
            _, store, mp = self._upload("write_multipart", multipart)
            return call_child(
                store,
                "write_multipart",
                multipart.path,
                lambda s: cast(Segmenter, s).write_multipart(mp, number, data, **pairs),
            )

    def complete_multipart(
        self, multipart: Multipart, parts: Sequence[Part], **pairs: Any
    ) -> Object:
        with self._traced("complete_multipart", multipart.path):
            prefix, store, mp = self._upload("complete_multipart", multipart)
            obj = call_child(
                store,
                "complete_multipart",
                multipart.path,
                lambda s: cast(Segmenter, s).complete_multipart(mp, parts, **pairs),
            )
            return self._out(prefix, obj)

    def abort_multipart(self, multipart: Multipart, **pairs: Any) -> None:
        with self._traced("abort_multipart", multipart.path):
            _, store, mp = self._upload("abort_multipart", multipart)
            call_child(
                store,
                "abort_multipart",
                multipart.path,
                lambda s: cast(Segmenter, s).abort_multipart(mp, **pairs),
            )

    def list_multipart(self, multipart: Multipart, **pairs: Any) -> Iterator[Part]:
        with self._traced("list_multipart", multipart.path):
            _, store, mp = self._upload("list_multipart", multipart)
            return call_child(
                store,
                "list_multipart",
                multipart.path,
                lambda s: prime(cast(Segmenter, s).list_multipart(mp, **pairs)),
            )


class _RouterLinker(Router, Linker):
    def create_link(self, path: str, target: str, **pairs: Any) -> Object:
        with self._traced("create_link", path):
            t_inner = self._table.link_target(path, target)
            prefix, obj = self._on(
                "create_link",
                path,
                lambda s, p: cast(Linker, s).create_link(p, t_inner, **pairs),
            )
            return self._out(prefix, obj)


class _RouterPresigner(Router, Presigner):
    def presign_read(self, path: str, **pairs: Any) -> str:
        with self._traced("presign_read", path):
            return cast(
                str,
                self._on(
                    "presign_read", path, lambda s, p: cast(Presigner, s).presign_read(p, **pairs)
                )[1],
            )

    def presign_write(self, path: str, **pairs: Any) -> str:
        with self._traced("presign_write", path):
            return cast(
                str,
                self._on(
                    "presign_write",
                    path,
                    lambda s, p: cast(Presigner, s).presign_write(p, **pairs),
                )[1],
            )


Router._capability_mixins = {
    Copier: _RouterCopier,
    Mover: _RouterMover,
    Segmenter: _RouterSegmenter,
    Appender: _RouterAppender,
    Direr: _RouterDirer,
    Linker: _RouterLinker,
    Presigner: _RouterPresigner,
}
