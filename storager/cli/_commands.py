"""The commands: ls, stat, cat, cp and rm. Each streams; none holds a whole object."""

from __future__ import annotations

import argparse
import posixpath
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, TextIO

from storager._errors import NotFoundError, ObjectModeInvalidError
from storager._object import Object
from storager._protocols import IoCallback, Storager
from storager.cli._output import Progress, kind, object_json, stat_text
from storager.cli._urls import Location, Stores

__all__ = ["COMMANDS", "Context", "UsageError"]

#: How much cat and stdin/stdout copies move at a time.
CHUNK = 1 << 20


class UsageError(Exception):
    """The command line is wrong; the message says how. Exit code 2."""


@dataclass
class Context:
    """What a command needs besides its arguments."""

    stores: Stores
    stdout: TextIO
    stdin: BinaryIO
    progress: Progress | None


def _abs(obj_path: str) -> str:
    """Return an object's path as store-absolute (stores open with work_dir ``/``)."""
    return obj_path if obj_path.startswith("/") else "/" + obj_path


def _service(store: Storager) -> str:
    return store.metadata().service


def _classify(store: Storager, loc: Location) -> tuple[str | None, Object | None]:
    """Return ``(directory, None)`` when ``loc`` names a directory, else ``(None, object)``.

    A missing object without a trailing ``/`` may still be a prefix on object stores,
    so it is returned as a directory and the caller decides what an empty listing means.
    """
    if loc.is_dir:
        return loc.path, None
    try:
        obj = store.stat(loc.path)
    except NotFoundError:
        return loc.path + "/", None
    if obj.is_dir:
        return loc.path + "/", None
    return None, obj


def _must_exist(store: Storager, directory: str) -> None:
    """Raise NotFoundError unless ``directory`` exists (called when it listed empty)."""
    if directory != "/":
        store.stat(directory)


def _long(obj: Object, name: str) -> str:
    size = "-" if obj.content_length is None else str(obj.content_length)
    when = obj.last_modified.isoformat(timespec="seconds") if obj.last_modified else "-"
    return f"{size:>12}  {when:<25}  {kind(obj):<4}  {name}"


# -- ls ------------------------------------------------------------------------------------


def cmd_ls(args: argparse.Namespace, ctx: Context) -> None:
    """List a directory (one level, or every object under it with -r), or show one object."""
    loc = ctx.stores.locate(args.url)
    store = ctx.stores.get(loc)
    directory, single = _classify(store, loc)
    out = ctx.stdout
    if single is not None:
        _print_entry(out, args, single, posixpath.basename(loc.path))
        return
    assert directory is not None
    mode = "prefix" if args.recursive else "dir"
    listed = False
    for obj in store.list(directory, list_mode=mode):
        name = _abs(obj.path)[len(directory) :]
        if not name:
            continue  # a directory's own marker
        listed = True
        _print_entry(out, args, obj, name)
    if not listed:
        _must_exist(store, directory)


def _print_entry(out: TextIO, args: argparse.Namespace, obj: Object, name: str) -> None:
    if args.json:
        out.write(object_json(obj, name) + "\n")
    elif args.long:
        out.write(_long(obj, name) + "\n")
    else:
        out.write(name + "\n")


# -- stat ----------------------------------------------------------------------------------


def cmd_stat(args: argparse.Namespace, ctx: Context) -> None:
    """Print one object's metadata."""
    loc = ctx.stores.locate(args.url)
    obj = ctx.stores.get(loc).stat(loc.path)
    shown = _abs(obj.path)
    ctx.stdout.write((object_json(obj, shown) if args.json else stat_text(obj, shown)) + "\n")


# -- cat -----------------------------------------------------------------------------------


def _pump(reader: BinaryIO, out: BinaryIO, on_chunk: IoCallback | None = None) -> None:
    while chunk := reader.read(CHUNK):
        out.write(chunk)
        if on_chunk is not None:
            on_chunk(len(chunk))


def _binary_stdout(ctx: Context) -> BinaryIO:
    ctx.stdout.flush()  # keep any text already written ahead of the bytes
    return ctx.stdout.buffer


def cmd_cat(args: argparse.Namespace, ctx: Context) -> None:
    """Stream an object, or the range --offset/--size, to stdout."""
    loc = ctx.stores.locate(args.url)
    if loc.is_dir:
        raise UsageError(f"cat: {loc.arg} names a directory, not an object")
    pairs = {}
    if args.offset is not None:
        pairs["offset"] = args.offset
    if args.size is not None:
        pairs["size"] = args.size
    out = _binary_stdout(ctx)
    with ctx.stores.get(loc).open_reader(loc.path, **pairs) as reader:
        _pump(reader, out)
    out.flush()


# -- cp ------------------------------------------------------------------------------------


def _copy(
    ctx: Context,
    name: str,
    total: int | None,
    write: Callable[[IoCallback | None], object],
) -> None:
    """Run one streaming copy, reporting progress when asked."""
    if ctx.progress is None:
        write(None)
        return
    ctx.progress.start(name, total)
    try:
        write(ctx.progress.advance)
    finally:
        ctx.progress.finish()


def _stream(
    ctx: Context, src: Storager, src_path: str, dst: Storager, dst_path: str, total: int | None
) -> None:
    """Copy one object as ``dst.write(path, src.open_reader(path))``."""
    if ctx.progress is not None and total is None:
        total = src.stat(src_path).content_length

    def write(callback: IoCallback | None) -> None:
        with src.open_reader(src_path) as reader:
            if callback is None:
                dst.write(dst_path, reader)
            else:
                dst.write(dst_path, reader, io_callback=callback)

    _copy(ctx, src_path, total, write)


def _is_dir(store: Storager, path: str) -> bool:
    if path.endswith("/"):
        return True
    try:
        return store.stat(path).is_dir
    except NotFoundError:
        return False


def cmd_cp(args: argparse.Namespace, ctx: Context) -> None:
    """Copy from any URL to any URL, streaming; ``-`` is stdin or stdout."""
    if args.recursive and "-" in (args.src, args.dst):
        raise UsageError("cp: -r cannot copy from stdin or to stdout")
    if args.src == "-" and args.dst == "-":
        _pump(ctx.stdin, _binary_stdout(ctx))
        return
    if args.src == "-":
        dst_loc = ctx.stores.locate(args.dst)
        if dst_loc.is_dir:
            raise UsageError(f"cp: stdin needs an object name, not a directory: {args.dst}")
        dst = ctx.stores.get(dst_loc)
        _copy(ctx, "-", None, lambda cb: _write_stdin(ctx, dst, dst_loc.path, cb))
        return
    src_loc = ctx.stores.locate(args.src)
    src = ctx.stores.get(src_loc)
    if args.dst == "-":
        if src_loc.is_dir:
            raise UsageError(f"cp: {src_loc.arg} names a directory; cannot write it to stdout")
        out = _binary_stdout(ctx)
        with src.open_reader(src_loc.path) as reader:
            _pump(reader, out)
        out.flush()
        return
    dst_loc = ctx.stores.locate(args.dst)
    dst = ctx.stores.get(dst_loc)
    if args.recursive:
        _copy_tree(ctx, src_loc, src, dst_loc, dst)
        return
    if src_loc.is_dir:
        raise ObjectModeInvalidError(
            "cp", _service(src), src_loc.path, "is a directory; use -r to copy a tree"
        )
    dst_path = dst_loc.path
    if _is_dir(dst, dst_path):
        dst_path = dst_path.rstrip("/") + "/" + posixpath.basename(src_loc.path)
    _stream(ctx, src, src_loc.path, dst, dst_path, None)


def _write_stdin(ctx: Context, dst: Storager, path: str, callback: IoCallback | None) -> None:
    if callback is None:
        dst.write(path, ctx.stdin)
    else:
        dst.write(path, ctx.stdin, io_callback=callback)


def _copy_tree(
    ctx: Context, src_loc: Location, src: Storager, dst_loc: Location, dst: Storager
) -> None:
    """Copy every object under SRC to the same relative path under DST."""
    src_dir, single = _classify(src, src_loc)
    if single is not None:
        dst_path = dst_loc.path
        if _is_dir(dst, dst_path):
            dst_path = dst_path.rstrip("/") + "/" + posixpath.basename(src_loc.path)
        _stream(ctx, src, src_loc.path, dst, dst_path, single.content_length)
        return
    assert src_dir is not None
    dst_dir = dst_loc.path if dst_loc.is_dir else dst_loc.path + "/"
    if src_loc.store_url == dst_loc.store_url and dst_dir.startswith(src_dir):
        raise UsageError(f"cp: cannot copy {src_loc.arg} into itself ({dst_loc.arg})")
    copied = 0
    for obj in _files(src, src_dir):
        path = _abs(obj.path)
        _stream(ctx, src, path, dst, dst_dir + path[len(src_dir) :], obj.content_length)
        copied += 1
    if not copied:
        _must_exist(src, src_dir)


def _files(store: Storager, directory: str) -> Iterator[Object]:
    """Yield every object (not directory) under ``directory``, in prefix mode."""
    for obj in store.list(directory, list_mode="prefix"):
        if not obj.is_dir and len(_abs(obj.path)) > len(directory):
            yield obj


# -- rm ------------------------------------------------------------------------------------


def cmd_rm(args: argparse.Namespace, ctx: Context) -> None:
    """Delete an object, or with -r everything under a directory. Missing is fine."""
    loc = ctx.stores.locate(args.url)
    store = ctx.stores.get(loc)
    if not args.recursive:
        if loc.path == "/":
            raise UsageError(f"rm: {loc.arg} names the top of the store, not an object")
        store.delete(loc.path)
        return
    directory, single = _classify(store, loc)
    if single is not None:
        store.delete(loc.path)
        return
    assert directory is not None
    if directory == "/" and loc.root_mapped:
        raise UsageError(f"rm: refusing to remove the file system root ({loc.arg}) recursively")
    for obj in list(_files(store, directory)):
        store.delete(_abs(obj.path))
    # Stores with real directories keep them after their files are gone: remove those
    # too, deepest first, then the directory itself.
    for path in sorted(_dirs(store, directory), key=len, reverse=True):
        store.delete(path)
    if directory != "/":
        store.delete(directory)


def _dirs(store: Storager, directory: str) -> list[str]:
    found = []
    for obj in store.list(directory):
        path = _abs(obj.path)
        if obj.is_dir and path != directory:
            found.append(path)
            found.extend(_dirs(store, path))
    return found


COMMANDS: dict[str, Callable[[argparse.Namespace, Context], None]] = {
    "ls": cmd_ls,
    "stat": cmd_stat,
    "cat": cmd_cat,
    "cp": cmd_cp,
    "rm": cmd_rm,
}
