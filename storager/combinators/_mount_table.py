"""Router's mount table: which mount a path goes to, and back; shared by both forms."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Generic, TypeVar

from storager._capability import Capability
from storager._errors import InvalidArgumentError, PairUnsupportedError
from storager._object import Multipart, Object, ObjectMode
from storager._paths import join_dir, normalize_work_dir, relative_to, resolve

__all__ = ["MountTable"]

S = TypeVar("S")


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
