"""The argument parser of ``storager``."""

from __future__ import annotations

import argparse
import importlib
from typing import TYPE_CHECKING, NoReturn

from storager.cli._commands import UsageError
from storager.cli._defaults import DEFAULT_JOBS, PART_SIZE
from storager.cli._serve import add_serve_parser

if TYPE_CHECKING:
    from storager.cli._commands import Context

__all__ = ["build_parser"]

_EPILOG = """\
An argument names an object: scheme://host/path/to/object?pair=value, or a local
path (fs), or with --config tree.toml NAME:path in the tree NAME of that file. A
trailing '/' names a directory. Exit codes: 0 success, 1 an operation failed (or some
objects of cp -r, mv -r or sync, each listed; or doctor's round trip), 2 usage error
(bad arguments, bad URL or tree file, unknown scheme or pair), 130 interrupted.
"""


class _Command:
    """A command's function, imported when the command runs.

    A run imports only its own command's module: ``ls`` does not load bench's or
    doctor's imports (start-up is most of a small command's time).
    """

    def __init__(self, module: str, name: str) -> None:
        self.module = module
        self.name = name

    def __call__(self, args: argparse.Namespace, ctx: Context) -> None:
        command = getattr(importlib.import_module(self.module), self.name)
        command(args, ctx)


#: Each command's module and function.
_COMMANDS = {
    "ls": _Command("storager.cli._commands", "cmd_ls"),
    "stat": _Command("storager.cli._commands", "cmd_stat"),
    "cat": _Command("storager.cli._commands", "cmd_cat"),
    "cp": _Command("storager.cli._copy", "cmd_cp"),
    "mv": _Command("storager.cli._copy", "cmd_mv"),
    "sync": _Command("storager.cli._sync", "cmd_sync"),
    "rm": _Command("storager.cli._commands", "cmd_rm"),
    "du": _Command("storager.cli._du", "cmd_du"),
    "doctor": _Command("storager.cli._doctor", "cmd_doctor"),
    "bench": _Command("storager.cli._bench", "cmd_bench"),
}


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises UsageError instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message}\n{self.format_usage().rstrip()}")


def _byte_count(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of bytes") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    return value


def _jobs(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 256:
        raise argparse.ArgumentTypeError(f"{text!r} must be from 1 to 256")
    return value


_UNITS = {"": 1, "b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "kb": 1000, "mb": 10**6}


def _size(text: str) -> int:
    """Parse ``4096``, ``4KiB``, ``1MiB``, ``1GiB`` (also kB, MB)."""
    number = text.rstrip("BbKkMmGgIi")
    unit = text[len(number) :].lower()
    if unit not in _UNITS or not number.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a size such as 4096, 4KiB or 1MiB")
    return int(number) * _UNITS[unit]


def _part_size(text: str) -> int:
    value = _size(text)
    if value < 1 << 20:
        raise argparse.ArgumentTypeError(f"{text!r} is below 1MiB")
    return value


def _add_transfer_options(parser: argparse.ArgumentParser) -> None:
    """-j, --progress/--no-progress and --json: what every transferring command takes."""
    parser.add_argument(
        "-j",
        "--jobs",
        type=_jobs,
        default=DEFAULT_JOBS,
        metavar="N",
        help=f"objects transferred at once (default {DEFAULT_JOBS})",
    )
    progress = parser.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="show progress on stderr (default: when stdout and stderr are terminals)",
    )
    progress.add_argument(
        "--no-progress", dest="progress", action="store_false", help="never show progress"
    )
    parser.add_argument(
        "--json", action="store_true", help="print a JSON summary (objects, bytes, failures)"
    )
    parser.add_argument(
        "--part-size",
        type=_part_size,
        default=PART_SIZE,
        metavar="SIZE",
        help=f"part size of a large object into s3 and the like (default {PART_SIZE >> 20}MiB;"
        " raised to the store's minimum)",
    )


def build_parser() -> argparse.ArgumentParser:
    """Return the parser; each subcommand sets ``func`` to its command."""
    from storager import __version__

    parser = _Parser(
        prog="storager",
        description="Work with objects in any storage service through one interface.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"storager {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # Every command that takes URLs takes --config, after the command like its other options.
    config = _Parser(add_help=False)
    config.add_argument(
        "--config",
        metavar="TREE.toml",
        help="a store tree file: NAME:path then names path in its tree NAME",
    )

    ls = sub.add_parser("ls", help="list a directory or show one object", parents=[config])
    ls.add_argument("url", metavar="URL")
    ls.add_argument("-l", "--long", action="store_true", help="show size, mtime and type")
    ls.add_argument(
        "-r", "--recursive", action="store_true", help="every object under URL (prefix mode)"
    )
    ls.add_argument("--json", action="store_true", help="one JSON object per line")

    stat = sub.add_parser("stat", help="show an object's metadata", parents=[config])
    stat.add_argument("url", metavar="URL")
    stat.add_argument("--json", action="store_true", help="print JSON")

    cat = sub.add_parser("cat", help="stream an object to stdout", parents=[config])
    cat.add_argument("url", metavar="URL")
    cat.add_argument("--offset", type=_byte_count, help="start at this byte")
    cat.add_argument("--size", type=_byte_count, help="at most this many bytes")

    cp = sub.add_parser(
        "cp", help="copy from any URL to any URL ('-' is stdin/stdout)", parents=[config]
    )
    cp.add_argument("src", metavar="SRC")
    cp.add_argument("dst", metavar="DST")
    cp.add_argument(
        "-r", "--recursive", action="store_true", help="copy every object under SRC to DST"
    )
    _add_transfer_options(cp)

    mv = sub.add_parser("mv", help="move an object, or with -r a tree", parents=[config])
    mv.add_argument("src", metavar="SRC")
    mv.add_argument("dst", metavar="DST")
    mv.add_argument(
        "-r", "--recursive", action="store_true", help="move every object under SRC to DST"
    )
    _add_transfer_options(mv)

    sync = sub.add_parser(
        "sync", help="copy to DST what differs under SRC (size, mtime)", parents=[config]
    )
    sync.add_argument("src", metavar="SRC")
    sync.add_argument("dst", metavar="DST")
    sync.add_argument(
        "--delete", action="store_true", help="remove DST objects SRC lacks (after the copies)"
    )
    sync.add_argument(
        "--dry-run", action="store_true", help="print what would be done; change nothing"
    )
    sync.add_argument(
        "--checksum", action="store_true", help="compare MD5s instead of modification times"
    )
    sync.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="leave paths matching GLOB alone on both sides (repeatable)",
    )
    _add_transfer_options(sync)

    rm = sub.add_parser("rm", help="delete an object (missing is fine)", parents=[config])
    rm.add_argument("url", metavar="URL")
    rm.add_argument("-r", "--recursive", action="store_true", help="delete everything under URL")

    du = sub.add_parser("du", help="count objects and bytes under a URL", parents=[config])
    du.add_argument("url", metavar="URL")
    du.add_argument("--json", action="store_true", help="print JSON")

    doctor = sub.add_parser(
        "doctor",
        help="check a store: config, credentials, capability, round trip",
        parents=[config],
    )
    doctor.add_argument("url", metavar="URL")
    doctor.add_argument("--json", action="store_true", help="print JSON")

    bench = sub.add_parser(
        "bench", help="measure PUT/GET/HEAD ops/s and large-object MB/s", parents=[config]
    )
    bench.add_argument("url", metavar="URL", help="a directory to work under (left empty)")
    bench.add_argument("--size", type=_size, default=4096, help="small object size (4KiB)")
    bench.add_argument("--count", type=int, default=1000, help="small objects (1000)")
    bench.add_argument(
        "--large", type=_size, default=64 << 20, help="large object size (64MiB; 0 to skip)"
    )
    bench.add_argument(
        "-j",
        "--jobs",
        type=_jobs,
        default=DEFAULT_JOBS,
        metavar="N",
        help=f"concurrent requests (default {DEFAULT_JOBS})",
    )
    bench.add_argument("--json", action="store_true", help="print JSON")

    for name, parser_ in sub.choices.items():
        parser_.set_defaults(func=_COMMANDS[name])
    add_serve_parser(sub)  # the gateway's command, with its own options
    return parser
