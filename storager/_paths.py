"""Path rules shared by every service.

Inside a store, paths are ``/``-separated. A caller's path is relative to the store's
``work_dir`` or absolute (leading ``/``) within the store; backslashes become ``/``,
``.`` segments and doubled slashes collapse, and ``..`` may climb only as far as the
store's root: climbing past it, or a NUL byte, raises :class:`PathInvalidError` before
anything is touched. Resolved paths are *store-absolute*: they start with ``/``, and
end with ``/`` when they name a directory.

A path names a directory when it ends with ``/``, or with a ``.`` or ``..`` segment
(``"x/."``, ``"a/.."``). Operations that act on directories too (``stat``, ``delete``,
``create_dir``) take such a path as the directory; every other operation refuses it
with :class:`PathInvalidError`, and operations that create or replace an object
(``write``, ``append``, ``copy``, ``move``...) also refuse a trailing ``/``.
"""

from __future__ import annotations

from storager._errors import PathInvalidError

__all__ = ["DIRECTORY_OPS", "WRITE_OPS", "join_dir", "normalize_work_dir", "relative_to", "resolve"]

#: Operations whose path may name a directory (``"d/"``, ``"d/."``).
DIRECTORY_OPS = frozenset({"stat", "delete", "create_dir", "list"})
#: Operations whose paths name an object to create, replace or take from: a directory
#: path there is a mistake in the path, reported before anything is touched.
WRITE_OPS = frozenset(
    {"write", "append", "copy", "move", "create_multipart", "presign_write", "create_link"}
)


def _clean(op: str, service: str, path: str, raw: str) -> str:
    """Collapse ``.``, ``..`` and empty segments; refuse to climb past the root."""
    if "\x00" in raw:
        raise PathInvalidError(op, service, path.replace("\x00", "\\0"), "NUL byte in path")
    raw = raw.replace("\\", "/")
    trailing = raw.endswith("/")
    parts: list[str] = []
    for segment in raw.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if not parts:
                raise PathInvalidError(op, service, path, "path leads outside the store's root")
            parts.pop()
            continue
        parts.append(segment)
    if not parts:
        return "/"
    joined = "/" + "/".join(parts)
    return joined + "/" if trailing else joined


def normalize_work_dir(work_dir: str | None, service: str = "") -> str:
    """Return ``work_dir`` as a store-absolute directory ending with ``/``.

    A relative ``work_dir`` is taken from the store's root.
    """
    if not work_dir:
        return "/"
    cleaned = _clean("new", service, work_dir, "/" + work_dir)
    return cleaned if cleaned.endswith("/") else cleaned + "/"


def resolve(op: str, service: str, work_dir: str, path: str) -> str:
    """Resolve a caller's object path to a store-absolute path.

    Args:
        op: The operation, for the error message.
        service: The service's name, for the error message.
        work_dir: The store's working directory (from :func:`normalize_work_dir`).
        path: The caller's path.

    Raises:
        PathInvalidError: The path is empty, contains NUL, names the root, or climbs
            out of the store's root.
    """
    # The common case (a plain relative key) skips the segment walk: no leading "/" or
    # ".", no "/." (which covers "." and ".." segments), "//", backslash, NUL or
    # trailing "/".
    if (
        type(path) is str
        and path
        and path[0] not in "/."
        and path[-1] != "/"
        and "/." not in path
        and "//" not in path
        and "\\" not in path
        and "\x00" not in path
    ):
        return work_dir + path
    if not isinstance(path, str):
        raise PathInvalidError(op, service, _shown(path), "path must be a str")
    if not path:
        raise PathInvalidError(op, service, path, "empty path")
    base = "" if path[0] in "/\\" else work_dir
    resolved = _clean(op, service, path, base + path)
    if resolved == "/":
        raise PathInvalidError(op, service, path, "path names the store's root, not an object")
    if path.replace("\\", "/").rpartition("/")[2] in (".", ".."):
        if op not in DIRECTORY_OPS:
            raise PathInvalidError(
                op, service, path, "a path ending in '.' or '..' names a directory, not an object"
            )
        resolved = resolved if resolved.endswith("/") else resolved + "/"
    if resolved.endswith("/") and op in WRITE_OPS:
        raise PathInvalidError(op, service, path, f"{op} takes an object path, not a directory")
    return resolved


def _shown(value: object) -> str:
    """Return a non-str path as an error shows it: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def join_dir(op: str, service: str, work_dir: str, path: str) -> str:
    """Resolve a directory (or listing prefix) path; ``""`` is ``work_dir`` itself."""
    if not isinstance(path, str):
        raise PathInvalidError(op, service, _shown(path), "path must be a str")
    if not path:
        return work_dir
    base = "" if path[0] in "/\\" else work_dir
    return _clean(op, service, path, base + path)


def relative_to(work_dir: str, path: str) -> str:
    """Return a store-absolute path as a caller sees it: relative to ``work_dir``."""
    if path.startswith(work_dir):
        return path[len(work_dir) :]
    return path
