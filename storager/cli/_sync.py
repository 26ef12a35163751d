"""sync: make DST hold what SRC holds, copying only what differs.

The planner lists both sides once each (prefix mode) and compares each source object with
the destination object at the same relative path:

* missing at the destination: copy (``new``);
* sizes differ: copy (``size``);
* by default, the source modified after the destination, compared to the second (S3
  reports whole seconds): copy (``newer``). A copy stamps the destination with the time it
  was written, so a second run finds every destination as new or newer and copies nothing
  (aws-cli's rule; no per-object request is needed, the listings carry the times);
* with ``--checksum``, the MD5s differ: copy (``checksum``). The MD5 is the one the store
  reports (``content_md5``, or an ETag that is a plain MD5); where a store reports none
  (fs, multipart ETags), the object is read and hashed, ``-j`` at a time.

``--exclude GLOB`` leaves matching paths alone on both sides (neither copied nor deleted).
``--delete`` removes destination objects that have no source object, only once every copy
succeeded. ``--dry-run`` prints the plan and changes nothing.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from storager._errors import StorageError
from storager._object import Object
from storager._protocols import Storager
from storager.cli._commands import (
    CHUNK,
    Context,
    PartialFailure,
    UsageError,
    abs_path,
    classify,
    files_under,
    must_exist,
)
from storager.cli._copy import display_for, finish_report, noting_kept_uploads, shown
from storager.cli._identity import Resolver
from storager.cli._progress import human_bytes
from storager.cli._resume import resume_dir
from storager.cli._transfer import Report, Transfer, TransferEngine
from storager.cli._versions import reported_md5, whole_seconds

__all__ = ["Plan", "cmd_sync", "plan_sync"]


@dataclass
class Plan:
    """What a sync will do: the copies (with their reasons), the deletes, what is equal."""

    copies: list[Transfer] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    same: int = 0
    same_bytes: int = 0

    @property
    def copy_bytes(self) -> int:
        """Return the bytes the copies will move (objects of unknown size count 0)."""
        return sum(t.size or 0 for t in self.copies)


def excluded(rel: str, patterns: Iterable[str]) -> bool:
    """Return whether ``rel`` matches a pattern: a pattern without ``/`` matches any name,
    one with ``/`` the whole relative path (``*`` crosses ``/``, as in rsync's ``**``)."""
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(rel if "/" in p else name, p) for p in patterns)


def _listing(store: Storager, directory: str, excludes: list[str]) -> dict[str, Object]:
    found: dict[str, Object] = {}
    for obj in files_under(store, directory):
        rel = abs_path(obj.path)[len(directory) :]
        if not excluded(rel, excludes):
            found[rel] = obj
    return found


def _md5(store: Storager, obj: Object) -> str:
    """Return the object's MD5 in hex: as the store reports it, or by reading it."""
    reported = reported_md5(obj)
    if reported is not None:
        return reported
    digest = hashlib.md5(usedforsecurity=False)
    with store.open_reader(abs_path(obj.path)) as reader:
        while chunk := reader.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _quick_reason(src_obj: Object, dst_obj: Object | None, checksum: bool) -> str | None:
    """Return why to copy from the listings alone, ``""`` if equal, None if MD5s decide."""
    if dst_obj is None:
        return "new"
    if src_obj.content_length != dst_obj.content_length:
        return "size"
    if checksum:
        return None
    if src_obj.last_modified is None or dst_obj.last_modified is None:
        return "no mtime"
    newer = whole_seconds(src_obj.last_modified) > whole_seconds(dst_obj.last_modified)
    return "newer" if newer else ""


def plan_sync(
    src: Storager,
    src_dir: str,
    dst: Storager,
    dst_dir: str,
    *,
    checksum: bool = False,
    delete: bool = False,
    excludes: list[str] | None = None,
    jobs: int = 1,
) -> Plan:
    """Compare the trees under ``src_dir`` and ``dst_dir`` and return what to do."""
    patterns = excludes or []
    # The two listings wait on different stores: list the destination meanwhile.
    with ThreadPoolExecutor(1, thread_name_prefix="storager-list") as pool:
        listing = pool.submit(_listing, dst, dst_dir, patterns)
        ours = _listing(src, src_dir, patterns)
        theirs = listing.result()
    plan = Plan()
    undecided: list[tuple[str, Object, Object]] = []
    decided: list[tuple[str, Object, str]] = []
    for rel, obj in ours.items():
        target = theirs.pop(rel, None)
        why = _quick_reason(obj, target, checksum)
        if why is None:
            assert target is not None
            undecided.append((rel, obj, target))
        else:
            decided.append((rel, obj, why))
    if undecided:
        with ThreadPoolExecutor(max(1, jobs), thread_name_prefix="storager-md5") as pool:
            differ = list(pool.map(lambda t: _md5(src, t[1]) != _md5(dst, t[2]), undecided))
        decided += [
            (rel, obj, "checksum" if d else "")
            for (rel, obj, _), d in zip(undecided, differ, strict=True)
        ]
    for rel, obj, why in sorted(decided, key=lambda d: d[0]):
        if why:
            plan.copies.append(
                Transfer(
                    abs_path(obj.path), dst_dir + rel, obj.content_length, rel, why, source=obj
                )
            )
        else:
            plan.same += 1
            plan.same_bytes += obj.content_length or 0
    if delete:
        plan.deletes = sorted(theirs)
    return plan


def _print_plan(ctx: Context, plan: Plan) -> None:
    out = ctx.stdout
    for item in plan.copies:
        out.write(f"copy    {item.name}  ({item.reason}, {human_bytes(item.size or 0)})\n")
    for rel in plan.deletes:
        out.write(f"delete  {rel}\n")
    out.write(
        f"dry run: would copy {len(plan.copies)} objects ({human_bytes(plan.copy_bytes)}), "
        f"delete {len(plan.deletes)}; {plan.same} up to date; nothing changed\n"
    )


def _plan_json(plan: Plan) -> dict[str, object]:
    return {
        "dry_run": True,
        "copy": [{"path": t.name, "reason": t.reason, "size": t.size} for t in plan.copies],
        "delete": plan.deletes,
        "up_to_date": plan.same,
        "up_to_date_bytes": plan.same_bytes,
    }


def cmd_sync(args: argparse.Namespace, ctx: Context) -> None:
    """Copy what differs from SRC to DST; with --delete remove what SRC does not have."""
    src_loc, dst_loc = ctx.stores.locate(args.src), ctx.stores.locate(args.dst)
    src, dst = ctx.stores.get(src_loc), ctx.stores.get(dst_loc)
    src_dir, single = classify(src, src_loc)
    if single is not None or src_dir is None:
        raise UsageError(f"sync: {src_loc.arg} names an object; sync takes directories")
    dst_dir = dst_loc.path if dst_loc.is_dir else dst_loc.path + "/"
    src_top = Resolver(src, src_loc.store_url).place(src_dir)
    dst_top = Resolver(dst, dst_loc.store_url).place(dst_dir)
    if src_top.contains(dst_top) or dst_top.contains(src_top):
        raise UsageError(f"sync: {src_loc.arg} and {dst_loc.arg} overlap")
    plan = plan_sync(
        src,
        src_dir,
        dst,
        dst_dir,
        checksum=args.checksum,
        delete=args.delete,
        excludes=args.exclude,
        jobs=args.jobs,
    )
    if not plan.copies and not plan.same:
        must_exist(src, src_dir)
    if args.dry_run:
        if args.json:
            ctx.stdout.write(json.dumps(_plan_json(plan)) + "\n")
        else:
            _print_plan(ctx, plan)
        return
    report = Report(skipped=plan.same, skipped_bytes=plan.same_bytes)
    if plan.copies:
        display = display_for(ctx)
        engine = TransferEngine(
            src,
            dst,
            jobs=args.jobs,
            display=display,
            store_urls=(src_loc.store_url, dst_loc.store_url),
            resume_dir=resume_dir(),
            part_size=args.part_size,
        )
        with noting_kept_uploads(ctx, engine), shown(display):
            engine.run(plan.copies, report)
    delete_skipped = bool(plan.deletes and report.failed)
    if plan.deletes and not report.failed:
        for rel in plan.deletes:
            try:
                dst.delete(dst_dir + rel)
                report.deleted += 1
            except StorageError as exc:
                report.count_failed(rel, str(exc))
    if not args.json:
        _print_summary(ctx, plan, report, delete_skipped)
    try:
        finish_report("sync", args, ctx, report)
    except PartialFailure as exc:
        if delete_skipped:
            exc.notes.append(f"--delete skipped ({len(plan.deletes)} objects): copies failed")
        raise


def _print_summary(ctx: Context, plan: Plan, report: Report, delete_skipped: bool) -> None:
    if not plan.copies and not plan.deletes:
        ctx.stdout.write(
            f"nothing to transfer: {plan.same} objects up to date "
            f"({human_bytes(plan.same_bytes)})\n"
        )
        return
    deleted = "delete skipped" if delete_skipped else f"deleted {report.deleted}"
    ctx.stdout.write(
        f"copied {report.copied} objects ({human_bytes(report.copied_bytes)}), "
        f"{deleted}, {report.skipped} up to date, "
        f"{len(report.failed)} failed in {report.seconds:.2f}s\n"
    )
