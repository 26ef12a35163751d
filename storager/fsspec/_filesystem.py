"""``StoragerFileSystem``: any store, combinator trees included, as an fsspec filesystem.

An ``fsspec.asyn.AsyncFileSystem`` over the store's async view (``storager.aio``): the
coroutine methods (``_cat_file``, ``_ls``...) await the view, so batch calls (``cat`` of
many paths, ``cat_ranges``, ``get``/``put``/``rm`` of a tree) run concurrently, at most
``batch_size`` requests at a time, and async users (zarr, ``asynchronous=True``) share
their own loop. The sync methods are fsspec's wrappers, which run the coroutines on
fsspec's IO loop, except the hot small read: a sync ``cat_file`` and the files ``open``
returns call the sync store in the caller's thread.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Coroutine, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from fsspec.asyn import AsyncFileSystem, sync
from fsspec.callbacks import DEFAULT_CALLBACK, Callback
from fsspec.core import has_magic
from fsspec.utils import tokenize

from storager._async_protocols import (
    AsyncCopier,
    AsyncDirer,
    AsyncMover,
    AsyncStorager,
)
from storager._errors import (
    AlreadyExistsError,
    InvalidArgumentError,
    NotFoundError,
    ObjectModeInvalidError,
)
from storager._object import Object
from storager._protocols import Storager
from storager._registry import redact_url
from storager._service import Service
from storager.aio import async_view
from storager.fsspec._batches import DEFAULT_IN_FLIGHT, run_bounded
from storager.fsspec._entries import directory_entry, entry
from storager.fsspec._files import StoragerReadFile, StoragerWriteFile
from storager.fsspec._ranges import coalesce, counts_from_end, read_window
from storager.fsspec._shared import shared_store
from storager.fsspec._urls import BUILTIN_SCHEMES, PREFIX, join_url, split_url, strip_path

__all__ = ["StoragerFileSystem"]

T = TypeVar("T")

#: Bytes per read when a file is downloaded (``get_file``).
DOWNLOAD_CHUNK = 8 << 20
#: Ranges of one file closer than this are fetched by one read (``cat_ranges``).
MAX_GAP = 1 << 20


class _Metaclass(type(AsyncFileSystem)):  # type: ignore[misc]
    """fsspec's instance cache keys on ``str(args)``: never share a filesystem by a store's repr."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if args or "store" in kwargs:
            kwargs["skip_instance_cache"] = True
        return super().__call__(*args, **kwargs)


class StoragerFileSystem(AsyncFileSystem, metaclass=_Metaclass):  # type: ignore[misc]
    """An fsspec filesystem over a storager store.

    Build it from exactly one of:

    - ``store``: any :class:`~storager.Storager` (a service, a combinator tree). Such a
      filesystem cannot be pickled: a store holds connections and credentials.
    - ``url``: a connection string (``"s3://bucket/?endpoint=..."``), opened with
      ``storager.open(url, **pairs)``. Filesystems with the same string and pairs share one
      store per process (so ``memory://`` data is seen by all of them). It pickles by the
      string and pairs, which then travel with the pickle, credentials included, as with
      s3fs: keep credentials out of the string (the environment, a credential file) where
      pickles leave the machine.
    - ``tree``: a ``tree.toml`` file (``storager.load(tree, tree_name)``); it pickles by
      the file's absolute path and the tree's name, and the file is read again on the other
      side (``${NAME}`` values from that side's environment).

    Paths are relative to the store's ``work_dir``, ``/``-separated, with no leading or
    trailing ``/``; ``storager+<scheme>://`` URLs are accepted wherever a path is.
    Errors are storager errors, which inherit the builtins fsspec callers catch
    (``NotFoundError`` is a ``FileNotFoundError``).

    Example::

        fs = StoragerFileSystem(storager.open("memory://"))
        fs.pipe_file("a/b.txt", b"hi")
        fs.ls("a")  # [{'name': 'a/b.txt', 'size': 2, 'type': 'file', ...}]
    """

    #: Every built-in ``storager+<scheme>``; an instance's own is its first ``protocol``.
    protocol: tuple[str, ...] = tuple(f"{PREFIX}{scheme}" for scheme in BUILTIN_SCHEMES)
    root_marker = ""
    cachable = True

    def __init__(
        self,
        store: Storager | None = None,
        *,
        url: str | None = None,
        tree: str | os.PathLike[str] | None = None,
        tree_name: str | None = None,
        asynchronous: bool = False,
        loop: asyncio.AbstractEventLoop | None = None,
        batch_size: int | None = None,
        **pairs: Any,
    ) -> None:
        sources = (("store", store), ("url", url), ("tree", tree))
        given = [name for name, value in sources if value is not None]
        if len(given) != 1:
            raise InvalidArgumentError(
                "new", "fsspec", "", f"give exactly one of store, url and tree (got {given})"
            )
        super().__init__(asynchronous=asynchronous, loop=loop, batch_size=batch_size)
        self._url = url
        self._tree = str(Path(tree).absolute()) if tree is not None else None
        if store is not None:
            if pairs or tree_name is not None:
                raise InvalidArgumentError(
                    "new", "fsspec", "", "pairs and tree_name go with url= or tree=, not store"
                )
            if not isinstance(store, Storager):
                raise InvalidArgumentError(
                    "new", "fsspec", "", f"store must be a Storager, not {type(store).__name__}"
                )
            self._store: Storager = store
        elif url is not None:
            self._store = shared_store(url, pairs)
        else:
            from storager.tree import load

            assert self._tree is not None
            self._store = load(self._tree, tree_name)
        self._aio: AsyncStorager = (
            self._store.aio if isinstance(self._store, Service) else async_view(self._store)
        )
        self._service = self._store.metadata().service
        if self._url is not None:
            self.protocol = (PREFIX + split_url(self._url).scheme,)

    # -- identity ---------------------------------------------------------------------------

    @property
    def store(self) -> Storager:
        """The sync store this filesystem runs on."""
        return self._store

    @property
    def service(self) -> str:
        """The store's service name, as errors show it."""
        return self._service

    def __reduce__(self) -> Any:
        if self._url is None and self._tree is None:
            raise TypeError(
                f"cannot pickle {self!r}: it was built from a live store; build it with "
                "StoragerFileSystem(url=...) or StoragerFileSystem(tree=...) to pickle it"
            )
        return super().__reduce__()

    def __repr__(self) -> str:
        if self._url is not None:
            return f"<StoragerFileSystem {redact_url(self._url)}>"
        if self._tree is not None:
            return f"<StoragerFileSystem tree {self._tree}>"
        return f"<StoragerFileSystem over {self._store!r}>"

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        return strip_path(os.fspath(path))

    @staticmethod
    def _get_kwargs_from_urls(path: str) -> dict[str, Any]:
        # A bare path (universal_pathlib passes them) names no store.
        return {"url": split_url(path).connection} if "://" in path else {}

    def unstrip_protocol(self, name: str) -> str:
        """Return the full URL of ``name`` (only for a filesystem built from ``url``)."""
        path = strip_path(name)
        if self._url is None:
            return f"storager://{path}"
        return join_url(self._url, path)

    # -- metadata ---------------------------------------------------------------------------

    async def _info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        path = self._strip_protocol(path)
        if not path:
            return directory_entry("")
        try:
            obj = await self._aio.stat(path)
        except NotFoundError:
            pass
        except ObjectModeInvalidError:
            # Some stores (Striped) refuse to stat a directory instead of describing it.
            return directory_entry(path)
        else:
            info = entry(obj)
            info["name"] = path
            return info
        if await _first(self._aio.list(path + "/")) is not None:
            return directory_entry(path)
        raise NotFoundError("info", self._service, path)

    async def _ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        path = self._strip_protocol(path)
        listed = [entry(obj) async for obj in self._list(path + "/" if path else "")]
        entries = [info for info in listed if info["name"] != path]  # its own marker
        if not entries and path:
            info = await self._info(path)  # raises FileNotFoundError when nothing is there
            if info["type"] == "file":
                entries = [info]
        entries.sort(key=lambda info: str(info["name"]))
        return entries if detail else [info["name"] for info in entries]

    async def _list(self, prefix: str, **pairs: Any) -> AsyncIterator[Object]:
        """List ``prefix``; a file or a missing path lists as nothing."""
        try:
            async for obj in self._aio.list(prefix, **pairs):
                yield obj
        except (NotFoundError, ObjectModeInvalidError):
            return

    async def _find(
        self, path: str, maxdepth: int | None = None, withdirs: bool = False, **kwargs: Any
    ) -> Any:
        if maxdepth is not None or withdirs:
            # A walk: prefix listings of some stores (fs) leave out empty directories.
            return await super()._find(path, maxdepth=maxdepth, withdirs=withdirs, **kwargs)
        # Files only: one prefix listing instead of a walk, one request per page.
        path = self._strip_protocol(path)
        detail = kwargs.pop("detail", False)
        found: dict[str, dict[str, Any]] = {}
        async for obj in self._list(path + "/" if path else "", list_mode="prefix"):
            if not obj.is_dir:  # directory markers are not files
                info = entry(obj)
                found[info["name"]] = info
        if not found and path:
            try:
                single = await self._info(path)
            except FileNotFoundError:
                single = {}
            if single.get("type") == "file":
                found[path] = single
        names = sorted(found)
        return {name: found[name] for name in names} if detail else names

    def modified(self, path: str) -> Any:
        """Return the file's last modification time (timezone-aware)."""
        info = self.info(path)
        if "mtime" not in info:
            raise NotImplementedError(f"{self._service} reports no modification time")
        return info["mtime"]

    def ukey(self, path: str) -> str:
        """Return a key that changes when the file does: its etag where the store gives one."""
        info = self.info(path)
        if "etag" in info:
            return str(tokenize(info["name"], info["etag"]))
        return str(tokenize(info))

    def checksum(self, path: str) -> int:
        """Return an integer that changes when the file does (from its etag when known)."""
        return int(self.ukey(path), 16)

    # -- reading ----------------------------------------------------------------------------

    async def _cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        path = self._strip_protocol(path)
        size = (await self._info(path))["size"] if counts_from_end(start, end) else None
        window = read_window(start, end, size)
        if window is None:
            await self._aio.stat(path)  # an empty range of a missing file still raises
            return b""
        return await self._aio.read(path, **window)

    def cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        """Return the file's bytes, or those in ``[start, end)`` (negative: from the end).

        Called from sync code, this reads through the sync store in the caller's thread:
        no hop through fsspec's event loop and the async view's pool, which cost more
        than a small read does (benchmarks/fsspec_peers.py).
        """
        path = self._strip_protocol(path)
        size = self.info(path)["size"] if counts_from_end(start, end) else None
        window = read_window(start, end, size)
        if window is None:
            self._store.stat(path)  # an empty range of a missing file still raises
            return b""
        return self._store.read(path, **window)

    async def _cat_ranges(
        self,
        paths: list[str],
        starts: int | list[int | None] | None,
        ends: int | list[int | None] | None,
        max_gap: int | None = None,
        batch_size: int | None = None,
        on_error: str = "return",
        **kwargs: Any,
    ) -> list[Any]:
        """Read byte ranges of files; nearby ranges of one file are fetched by one read."""
        if not isinstance(paths, list):
            raise TypeError("paths must be a list")
        count = len(paths)
        starts_list = starts if isinstance(starts, list) else [starts] * count
        ends_list = ends if isinstance(ends, list) else [ends] * count
        if len(starts_list) != count or len(ends_list) != count:
            raise ValueError("paths, starts and ends differ in length")
        stripped = [self._strip_protocol(p) for p in paths]
        plan = coalesce(stripped, starts_list, ends_list, MAX_GAP if max_gap is None else max_gap)
        fetched = await self._in_batches(
            [self._cat_file(p, start=s, end=e) for p, s, e in plan.reads],
            batch_size,
            return_exceptions=True,
        )
        out = plan.slices(fetched)
        if on_error != "return":
            for item in out:
                if isinstance(item, BaseException):
                    raise item
        return out

    async def _get_file(
        self, rpath: str, lpath: str, callback: Callback = DEFAULT_CALLBACK, **kwargs: Any
    ) -> None:
        rpath = self._strip_protocol(rpath)
        try:
            reader = await self._aio.open_reader(rpath)
        except (ObjectModeInvalidError, NotFoundError):
            # A directory: refused, or missing where only its marker or keys exist.
            if not await self._isdir(rpath):
                raise
            os.makedirs(lpath, exist_ok=True)
            return
        try:
            with open(lpath, "wb") as out:
                buffer = bytearray(DOWNLOAD_CHUNK)
                view = memoryview(buffer)
                while count := await reader.readinto(buffer):
                    out.write(view[:count])
                    callback.relative_update(count)
        except BaseException:
            Path(lpath).unlink(missing_ok=True)
            raise
        finally:
            await reader.close()

    # -- writing ----------------------------------------------------------------------------

    async def _pipe_file(
        self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any
    ) -> None:
        path = self._strip_protocol(path)
        if mode == "create":
            await self._write_new(path, value)
        else:
            await self._aio.write(path, value)

    async def _write_new(self, path: str, data: Any) -> None:
        """Write ``data`` at ``path``, refusing to replace a file (``mode="create"``)."""
        if _accepts(self._aio, "write", "if_none_match"):
            await self._aio.write(path, data, if_none_match="*")
            return
        if await self._exists(path):
            raise AlreadyExistsError("write", self._service, path, "the file exists")
        await self._aio.write(path, data)

    async def _put_file(
        self,
        lpath: str,
        rpath: str,
        callback: Callback = DEFAULT_CALLBACK,
        mode: str = "overwrite",
        **kwargs: Any,
    ) -> None:
        rpath = self._strip_protocol(rpath)
        if os.path.isdir(lpath):
            await self._makedirs(rpath, exist_ok=True)
            return
        size = os.path.getsize(lpath)
        callback.set_size(size)
        with open(lpath, "rb") as data:
            if mode == "create":
                await self._write_new(rpath, data)
            else:
                await self._aio.write(rpath, data)
        callback.relative_update(size)

    async def _cp_file(self, path1: str, path2: str, moving: bool = False, **kwargs: Any) -> None:
        path1, path2 = self._strip_protocol(path1), self._strip_protocol(path2)
        if moving and path1 == path2:
            # A glob move ("d/*" to "d") maps files onto themselves: the move would delete them.
            raise InvalidArgumentError("mv", self._service, path1, "it would move onto itself")
        if isinstance(self._aio, AsyncCopier):
            try:
                await self._aio.copy(path1, path2)
                return
            except (ObjectModeInvalidError, NotFoundError):
                # A directory: refused, or missing where only its marker or keys exist.
                if not await self._isdir(path1):
                    raise
        elif (await self._info(path1))["type"] != "directory":
            async with await self._aio.open_reader(path1) as reader:
                await self._aio.write(path2, reader)
            return
        await self._makedirs(path2, exist_ok=True)

    async def _mv(
        self,
        path1: str | list[str],
        path2: str | list[str],
        recursive: bool = False,
        maxdepth: int | None = None,
    ) -> None:
        if isinstance(path1, list) and isinstance(path2, list):
            # A pair moved onto itself would be copied onto itself, then deleted.
            pairs = [
                (source, target)
                for source, target in zip(path1, path2, strict=True)
                if self._strip_protocol(source) != self._strip_protocol(target)
            ]
            if not pairs:
                return
            path1, path2 = [source for source, _ in pairs], [target for _, target in pairs]
        elif isinstance(path1, str) and isinstance(path2, str):
            source, target = self._strip_protocol(path1), self._strip_protocol(path2)
            if source == target:
                return  # as fsspec's own mv: nothing moves, nothing is deleted
            if recursive and (not source or target.startswith(source + "/")):
                raise InvalidArgumentError(
                    "mv", self._service, source, f"cannot move a directory into itself ({target})"
                )
            if (
                isinstance(self._aio, AsyncMover)
                and not recursive
                and await self._isfile(source)
                and not await self._isdir(target)
            ):
                await self._aio.move(source, target)
                return
        # on_error="raise": a copy that failed must never lead to deleting its source.
        await self._copy(
            path1, path2, recursive=recursive, maxdepth=maxdepth, on_error="raise", moving=True
        )
        await self._rm(path1, recursive=recursive, maxdepth=maxdepth)

    def mv(
        self,
        path1: str | list[str],
        path2: str | list[str],
        recursive: bool = False,
        maxdepth: int | None = None,
        **kwargs: Any,
    ) -> None:
        """Move files; a single file is moved server-side where the store is a Mover."""
        sync(self.loop, self._mv, path1, path2, recursive=recursive, maxdepth=maxdepth)

    async def _rm_file(self, path: str, **kwargs: Any) -> None:
        await self._aio.delete(self._strip_protocol(path))

    async def _rm(
        self,
        path: str | list[str],
        recursive: bool = False,
        batch_size: int | None = None,
        maxdepth: int | None = None,
        **kwargs: Any,
    ) -> None:
        if recursive and isinstance(path, str) and not has_magic(path):
            # One walk gives every name and its type: no stat per name.
            found = await self._find(path, maxdepth=maxdepth, withdirs=True, detail=True)
            if not found:
                raise NotFoundError("rm", self._service, self._strip_protocol(path))
            kinds = {name: info.get("type", "file") for name, info in found.items()}
        else:
            names = await self._expand_path(path, recursive=recursive, maxdepth=maxdepth)
            infos = await self._in_batches([self._info(name) for name in names], batch_size)
            kinds = {info["name"]: info["type"] for info in infos}
        files = [name for name, kind in kinds.items() if kind == "file"]
        dirs = [name for name, kind in kinds.items() if kind == "directory" and name]
        await self._in_batches([self._aio.delete(name) for name in files], batch_size)
        # Deepest first, one at a time: a directory goes once it is empty.
        for name in sorted(dirs, key=lambda d: d.count("/"), reverse=True):
            await self._aio.delete(name + "/")

    async def _in_batches(
        self,
        coros: list[Coroutine[Any, Any, T]],
        batch_size: int | None,
        return_exceptions: bool = False,
    ) -> list[Any]:
        """Await ``coros``, at most ``batch_size`` (else the filesystem's) at a time.

        A store's connection pool bounds how many requests it can serve at once, so more
        in flight only queue: without a ``batch_size`` anywhere, ``DEFAULT_IN_FLIGHT``.
        """
        limit = batch_size or self.batch_size or DEFAULT_IN_FLIGHT
        return await run_bounded(coros, limit, return_exceptions=return_exceptions)

    async def _mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        path = self._strip_protocol(path)
        if path and isinstance(self._aio, AsyncDirer):
            await self._aio.create_dir(path)
        # Elsewhere directories are implied by the keys under them: nothing to create.

    async def _makedirs(self, path: str, exist_ok: bool = False) -> None:
        path = self._strip_protocol(path)
        if not exist_ok and path and await self._exists(path):
            raise AlreadyExistsError("makedirs", self._service, path)
        await self._mkdir(path)

    # -- files ------------------------------------------------------------------------------

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> StoragerReadFile | StoragerWriteFile:
        path = self._strip_protocol(path)
        if mode == "rb":
            return StoragerReadFile(
                self,
                path,
                block_size=block_size,
                cache_options=cache_options,
                cache_type=kwargs.get("cache_type", "readahead"),
            )
        if mode in ("wb", "xb", "ab"):
            return StoragerWriteFile(self, path, mode, block_size=block_size, autocommit=autocommit)
        raise InvalidArgumentError("open", self._service, path, f"mode {mode!r} not supported")


async def _first(items: AsyncIterator[T]) -> T | None:
    """Return the first item of an async iterator (closing it), or None."""
    try:
        async for item in items:
            return item
        return None
    finally:
        close = getattr(items, "aclose", None)
        if close is not None:
            await close()


def _accepts(store: AsyncStorager, op: str, pair: str) -> bool:
    operations: Mapping[str, Iterable[str]] = store.metadata().capability.operations
    return pair in operations.get(op, ())
