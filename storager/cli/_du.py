"""du: how many objects and bytes are under a URL, in total and per top-level entry."""

from __future__ import annotations

import argparse
import json

from storager.cli._commands import Context, abs_path, classify, files_under, must_exist
from storager.cli._progress import human_bytes

__all__ = ["cmd_du"]


def cmd_du(args: argparse.Namespace, ctx: Context) -> None:
    """Count the objects and bytes under URL (one listing in prefix mode)."""
    loc = ctx.stores.locate(args.url)
    store = ctx.stores.get(loc)
    directory, single = classify(store, loc)
    if single is not None:
        entries = {loc.path.rsplit("/", 1)[-1]: (1, single.content_length or 0)}
    else:
        assert directory is not None
        entries = {}
        for obj in files_under(store, directory):
            rel = abs_path(obj.path)[len(directory) :]
            top = rel.split("/", 1)[0] + ("/" if "/" in rel else "")
            count, size = entries.get(top, (0, 0))
            entries[top] = (count + 1, size + (obj.content_length or 0))
        if not entries:
            must_exist(store, directory)
    objects = sum(count for count, _ in entries.values())
    total = sum(size for _, size in entries.values())
    if args.json:
        ctx.stdout.write(
            json.dumps(
                {
                    "url": loc.arg,
                    "objects": objects,
                    "bytes": total,
                    "entries": [
                        {"path": name, "objects": count, "bytes": size}
                        for name, (count, size) in sorted(entries.items())
                    ],
                }
            )
            + "\n"
        )
        return
    for name, (count, size) in sorted(entries.items()):
        ctx.stdout.write(f"{size:>14}  {human_bytes(size):>10}  {count:>8}  {name}\n")
    ctx.stdout.write(f"{total:>14}  {human_bytes(total):>10}  {objects:>8}  total\n")
