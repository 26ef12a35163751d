"""The commands ls, stat, cat and rm, and what every command shares (Context, listing)."""

from __future__ import annotations

import argparse
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, TextIO

from storager._errors import NotFoundError
from storager._object import Object
from storager._protocols import IoCallback, Storager
from storager.cli._output import kind, object_json, stat_text
from storager.cli._urls import Location, Stores

__all__ = [
    "CHUNK",
    "Context",
    "PartialFailure",
    "UsageError",
    "abs_path",
    "binary_stdout",
    "classify",
    "cmd_cat",
    "cmd_ls",
    "cmd_rm",
    "cmd_stat",
    "dirs_under",
    "files_under",
    "is_dir",
    "must_exist",
    "pump",
    "service_name",
]

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
    stderr: TextIO
    #: Show progress on stderr (``--progress``, or by default when both stdout and stderr
    #: are terminals); live and redrawn when stderr is a terminal, one line per object else.
    show_progress: bool = False


class PartialFailure(Exception):
    """Some objects of a cp -r, sync or mv failed; the rest were done. Exit code 1.

    Attributes:
        failures: ``(object, error message)`` for each failed object.
        notes: Lines to print after the failures (what was skipped because of them).
    """

    def __init__(self, command: str, failures: list[tuple[str, str]], total: int) -> None:
        super().__init__(f"{command}: {len(failures)} of {total} objects failed")
        self.failures = failures
        self.notes: list[str] = []


def abs_path(obj_path: str) -> str:
    """Return an object's path as store-absolute (stores open with work_dir ``/``)."""
    return obj_path if obj_path.startswith("/") else "/" + obj_path


def service_name(store: Storager) -> str:
    """Return the store's service name, for error messages."""
    return store.metadata().service


def classify(store: Storager, loc: Location) -> tuple[str | None, Object | None]:
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


def must_exist(store: Storager, directory: str) -> None:
    """Raise NotFoundError unless ``directory`` exists (called when it listed empty)."""
    if directory != "/":
        store.stat(directory)


def _long(obj: Object, name: str) -> str:
    size = "-" if obj.content_length is None else str(obj.content_length)
    when = obj.last_modified.isoformat(timespec="seconds") if obj.last_modified else "-"
    return f"{size:>12}  {when:<25}  {kind(obj):<4}  {name}"


def is_dir(store: Storager, path: str) -> bool:
    """Return whether ``path`` names a directory: a trailing ``/`` or a stat that says so."""
    if path.endswith("/"):
        return True
    try:
        return store.stat(path).is_dir
    except NotFoundError:
        return False


# -- ls ------------------------------------------------------------------------------------


def cmd_ls(args: argparse.Namespace, ctx: Context) -> None:
    """List a directory (one level, or every object under it with -r), or show one object."""
    loc = ctx.stores.locate(args.url)
    store = ctx.stores.get(loc)
    directory, single = classify(store, loc)
    out = ctx.stdout
    if single is not None:
        _print_entry(out, args, single, posixpath.basename(loc.path))
        return
    assert directory is not None
    mode = "prefix" if args.recursive else "dir"
    listed = False
    for obj in store.list(directory, list_mode=mode):
        name = abs_path(obj.path)[len(directory) :]
        if not name:
            continue  # a directory's own marker
        listed = True
        _print_entry(out, args, obj, name)
    if not listed:
        must_exist(store, directory)


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
    shown = abs_path(obj.path)
    ctx.stdout.write((object_json(obj, shown) if args.json else stat_text(obj, shown)) + "\n")


# -- cat -----------------------------------------------------------------------------------


def pump(reader: BinaryIO, out: BinaryIO, on_chunk: IoCallback | None = None) -> None:
    """Copy ``reader`` to ``out`` in CHUNK-sized pieces."""
    while chunk := reader.read(CHUNK):
        out.write(chunk)
        if on_chunk is not None:
            on_chunk(len(chunk))


def binary_stdout(ctx: Context) -> BinaryIO:
    """Return stdout's byte stream, after flushing any text written to it."""
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
    out = binary_stdout(ctx)
    with ctx.stores.get(loc).open_reader(loc.path, **pairs) as reader:
        pump(reader, out)
    out.flush()


def files_under(store: Storager, directory: str) -> Iterator[Object]:
    """Yield every object (not directory) under ``directory``, in prefix mode."""
    for obj in store.list(directory, list_mode="prefix"):
        if not obj.is_dir and len(abs_path(obj.path)) > len(directory):
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
    directory, single = classify(store, loc)
    if single is not None:
        store.delete(loc.path)
        return
    assert directory is not None
    if directory == "/" and loc.root_mapped:
        raise UsageError(f"rm: refusing to remove the file system root ({loc.arg}) recursively")
    for obj in list(files_under(store, directory)):
        store.delete(abs_path(obj.path))
    # Stores with real directories keep them after their files are gone: remove those
    # too, deepest first, then the directory itself.
    for path in sorted(dirs_under(store, directory), key=len, reverse=True):
        store.delete(path)
    if directory != "/":
        store.delete(directory)


def dirs_under(store: Storager, directory: str) -> list[str]:
    """Return every directory under ``directory`` (stores with real directories)."""
    found = []
    for obj in store.list(directory):
        path = abs_path(obj.path)
        if obj.is_dir and path != directory:
            found.append(path)
            found.extend(dirs_under(store, path))
    return found
