"""cp and mv: one object, stdin/stdout, or with -r a whole tree through the transfer engine."""

from __future__ import annotations

import argparse
import json
import posixpath
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from storager._errors import NotFoundError, ObjectModeInvalidError
from storager._object import Object
from storager._protocols import Storager
from storager.cli._commands import (
    Context,
    PartialFailure,
    UsageError,
    abs_path,
    binary_stdout,
    classify,
    dirs_under,
    files_under,
    is_dir,
    must_exist,
    pump,
    service_name,
)
from storager.cli._identity import Resolver
from storager.cli._progress import TransferDisplay
from storager.cli._resume import resume_dir
from storager.cli._transfer import Report, Transfer, TransferEngine
from storager.cli._urls import Location

__all__ = [
    "cmd_cp",
    "cmd_mv",
    "display_for",
    "finish_report",
    "noting_kept_uploads",
    "tree_transfers",
]


def display_for(ctx: Context) -> TransferDisplay | None:
    """Return the progress display the command line asked for, or None."""
    if not ctx.show_progress:
        return None
    isatty = getattr(ctx.stderr, "isatty", None)
    return TransferDisplay(ctx.stderr, live=bool(isatty and isatty()))


def shown(display: TransferDisplay | None) -> Any:
    """Return a context that runs the display (or does nothing without one)."""
    return display if display is not None else nullcontext()


@contextmanager
def noting_kept_uploads(ctx: Context, engine: TransferEngine) -> Iterator[None]:
    """Say on stderr, however the run ends, which uploads were kept for a re-run."""
    try:
        yield
    finally:
        kept = engine.kept_uploads
        if kept:
            names = ", ".join(kept[:3]) + (", ..." if len(kept) > 3 else "")
            ctx.stderr.write(
                f"storager: {len(kept)} unfinished upload(s) kept ({names}): "
                "run the same command again to send only what is missing\n"
            )
            ctx.stderr.flush()


def finish_report(command: str, args: argparse.Namespace, ctx: Context, report: Report) -> None:
    """Print the summary as JSON when asked; raise PartialFailure if an object failed."""
    if getattr(args, "json", False):
        ctx.stdout.write(json.dumps(report.as_json()) + "\n")
        ctx.stdout.flush()
    if report.failed:
        raise PartialFailure(command, report.failed, report.copied + len(report.failed))


def tree_transfers(src: Storager, src_dir: str, dst_dir: str) -> Iterator[Transfer]:
    """Yield a transfer for every object under ``src_dir``, to the same place under ``dst_dir``."""
    for obj in files_under(src, src_dir):
        path = abs_path(obj.path)
        rel = path[len(src_dir) :]
        yield Transfer(path, dst_dir + rel, obj.content_length, rel, source=obj)


def _into(dst: Storager, dst_path: str, src_path: str) -> str:
    """Return where an object lands: inside ``dst_path`` when that is a directory."""
    if is_dir(dst, dst_path):
        return dst_path.rstrip("/") + "/" + posixpath.basename(src_path.rstrip("/"))
    return dst_path


def _one_object(
    args: argparse.Namespace,
    ctx: Context,
    src: Storager,
    src_path: str,
    dst: Storager,
    dst_path: str,
    *,
    source: Object | None,
    move: bool,
    locations: tuple[Location, Location],
) -> Report:
    """Copy (or move) one object; its error goes up as it is (exit code 1).

    Raises:
        UsageError: Both sides resolve to the same object.
    """
    src_loc, dst_loc = locations
    src_place = Resolver(src, src_loc.store_url).place(src_path)
    if src_place.same(Resolver(dst, dst_loc.store_url).place(dst_path)):
        command = "mv" if move else "cp"
        raise UsageError(
            f"{command}: {src_loc.arg} and {dst_loc.arg} are the same object ({src_place.path})"
        )
    display = display_for(ctx)
    source = src.stat(src_path) if source is None else source
    if source.is_dir:
        command, verb = ("mv", "move") if move else ("cp", "copy")
        raise ObjectModeInvalidError(
            command, service_name(src), src_path, f"is a directory; use -r to {verb} a tree"
        )
    urls = (src_loc.store_url, dst_loc.store_url)
    engine = TransferEngine(
        src,
        dst,
        jobs=1,
        display=display,
        move=move,
        store_urls=urls,
        resume_dir=resume_dir(),
        part_size=args.part_size,
    )
    report = Report()
    started = time.monotonic()
    item = Transfer(src_path, dst_path, source.content_length, src_path, source=source)
    with noting_kept_uploads(ctx, engine), shown(display):
        report.count_copied(engine.one(item, report))
    report.seconds = time.monotonic() - started
    return report


def _tree(
    args: argparse.Namespace, ctx: Context, src_loc: Location, dst_loc: Location, *, move: bool
) -> Report:
    """Copy (or move) every object under SRC to the same relative path under DST."""
    command = "mv" if move else "cp"
    src, dst = ctx.stores.get(src_loc), ctx.stores.get(dst_loc)
    src_dir, single = classify(src, src_loc)
    if single is not None:
        dst_path = _into(dst, dst_loc.path, src_loc.path)
        return _one_object(
            args,
            ctx,
            src,
            src_loc.path,
            dst,
            dst_path,
            source=single,
            move=move,
            locations=(src_loc, dst_loc),
        )
    assert src_dir is not None
    dst_dir = dst_loc.path if dst_loc.is_dir else dst_loc.path + "/"
    src_top = Resolver(src, src_loc.store_url).place(src_dir)
    dst_top = Resolver(dst, dst_loc.store_url).place(dst_dir)
    if src_top.contains(dst_top):
        verb = "move" if move else "copy"
        raise UsageError(f"{command}: cannot {verb} {src_loc.arg} into itself ({dst_loc.arg})")
    if move and dst_top.contains(src_top):
        raise UsageError(f"mv: cannot move {src_loc.arg} into a tree that holds it ({dst_loc.arg})")
    report = Report()
    display = display_for(ctx)
    urls = (src_loc.store_url, dst_loc.store_url)
    engine = TransferEngine(
        src,
        dst,
        jobs=args.jobs,
        display=display,
        move=move,
        store_urls=urls,
        resume_dir=resume_dir(),
        part_size=args.part_size,
    )
    with noting_kept_uploads(ctx, engine), shown(display):
        engine.run(tree_transfers(src, src_dir, dst_dir), report)
    if not report.copied and not report.failed:
        must_exist(src, src_dir)
    if move and not report.failed:
        # Stores with real directories keep the emptied ones: remove them, deepest first.
        for path in sorted(dirs_under(src, src_dir), key=len, reverse=True):
            src.delete(path)
        if src_dir != "/":
            src.delete(src_dir)
    return report


# -- cp ------------------------------------------------------------------------------------


def cmd_cp(args: argparse.Namespace, ctx: Context) -> None:
    """Copy from any URL to any URL, streaming; ``-`` is stdin or stdout."""
    if args.recursive and "-" in (args.src, args.dst):
        raise UsageError("cp: -r cannot copy from stdin or to stdout")
    if args.src == "-" and args.dst == "-":
        pump(ctx.stdin, binary_stdout(ctx))
        return
    if args.src == "-":
        _cp_stdin(args, ctx)
        return
    src_loc = ctx.stores.locate(args.src)
    src = ctx.stores.get(src_loc)
    if args.dst == "-":
        if src_loc.is_dir:
            raise UsageError(f"cp: {src_loc.arg} names a directory; cannot write it to stdout")
        out = binary_stdout(ctx)
        with src.open_reader(src_loc.path) as reader:
            pump(reader, out)
        out.flush()
        return
    dst_loc = ctx.stores.locate(args.dst)
    if args.recursive:
        finish_report("cp", args, ctx, _tree(args, ctx, src_loc, dst_loc, move=False))
        return
    if src_loc.is_dir:
        raise ObjectModeInvalidError(
            "cp", service_name(src), src_loc.path, "is a directory; use -r to copy a tree"
        )
    dst = ctx.stores.get(dst_loc)
    dst_path = _into(dst, dst_loc.path, src_loc.path)
    report = _one_object(
        args,
        ctx,
        src,
        src_loc.path,
        dst,
        dst_path,
        source=None,
        move=False,
        locations=(src_loc, dst_loc),
    )
    finish_report("cp", args, ctx, report)


def _cp_stdin(args: argparse.Namespace, ctx: Context) -> None:
    dst_loc = ctx.stores.locate(args.dst)
    if dst_loc.is_dir:
        raise UsageError(f"cp: stdin needs an object name, not a directory: {args.dst}")
    dst = ctx.stores.get(dst_loc)
    display = display_for(ctx)
    started = time.monotonic()
    with shown(display):
        token = display.begin("-", None) if display is not None else 0
        ok = False
        try:
            if display is None:
                obj = dst.write(dst_loc.path, ctx.stdin)
            else:
                obj = dst.write(
                    dst_loc.path, ctx.stdin, io_callback=lambda n: display.advance(token, n)
                )
            ok = True
        finally:
            if display is not None:
                display.end(token, ok=ok)
    report = Report(seconds=time.monotonic() - started)
    report.count_copied(obj.content_length or 0)
    finish_report("cp", args, ctx, report)


# -- mv ------------------------------------------------------------------------------------


def cmd_mv(args: argparse.Namespace, ctx: Context) -> None:
    """Move an object (or with -r a tree): a rename on one store that can, else copy + delete."""
    src_loc = ctx.stores.locate(args.src)
    dst_loc = ctx.stores.locate(args.dst)
    src = ctx.stores.get(src_loc)
    if args.recursive:
        finish_report("mv", args, ctx, _tree(args, ctx, src_loc, dst_loc, move=True))
        return
    directory, single = classify(src, src_loc)
    if single is None:
        assert directory is not None
        if not src_loc.is_dir and not any(True for _ in files_under(src, directory)):
            raise NotFoundError("mv", service_name(src), src_loc.path, "not found")
        raise ObjectModeInvalidError(
            "mv", service_name(src), src_loc.path, "is a directory; use -r to move a tree"
        )
    dst = ctx.stores.get(dst_loc)
    dst_path = _into(dst, dst_loc.path, src_loc.path)
    report = _one_object(
        args,
        ctx,
        src,
        src_loc.path,
        dst,
        dst_path,
        source=single,
        move=True,
        locations=(src_loc, dst_loc),
    )
    finish_report("mv", args, ctx, report)
