"""The ``storager`` command line (also ``python -m storager``).

Commands::

    storager ls [-l] [-r] [--json] URL     list a directory, or show one object
    storager stat [--json] URL             print an object's metadata
    storager cat [--offset N] [--size N] URL   stream an object (or a range) to stdout
    storager cp [-r] [--progress] SRC DST  copy from any URL to any URL, streaming
    storager rm [-r] URL                   delete an object, or a whole directory

An argument names an object, not a store: ``s3://bucket/dir/a.txt`` opens the store
``s3://bucket`` and names ``/dir/a.txt`` in it; ``fs:///data/a.txt`` (or the local
path ``/data/a.txt``) opens the file system at root ``/`` and names ``/data/a.txt``.
Query pairs configure the store. A trailing ``/`` names a directory. In ``cp``, ``-``
is stdin as SRC and stdout as DST. With ``--config tree.toml`` (after the command), an
argument ``NAME:path`` names ``path`` in the store tree ``NAME`` of that file
(``storager ls --config tree.toml photos:2024/``; see docs/trees.md). See docs/cli.md
for examples.

Errors print one line, ``storager: <message>``, on stderr, never a traceback.

Exit codes:
    0: success.
    1: an operation failed (a StorageError: missing object, permission denied...).
    2: usage error: bad arguments, a malformed URL or unknown key
       (ConnectionStringInvalidError), a bad tree file or unknown tree name
       (ConnectionStringInvalidError), an unknown scheme (ServiceNotRegisteredError),
       a missing, unsupported or invalid pair (PairRequiredError, PairUnsupportedError,
       PairInvalidError).
    130: interrupted (Ctrl-C).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from storager._errors import (
    ConnectionStringInvalidError,
    PairInvalidError,
    PairRequiredError,
    PairUnsupportedError,
    ServiceNotRegisteredError,
    StorageError,
)
from storager.cli._commands import Context, UsageError
from storager.cli._output import Progress
from storager.cli._parser import build_parser
from storager.cli._urls import Location, Stores, split_url
from storager.tree import TreeFile

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "Location",
    "main",
    "split_url",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

#: Storage errors that mean the command line itself is wrong.
_USAGE_ERRORS = (
    ConnectionStringInvalidError,
    ServiceNotRegisteredError,
    PairRequiredError,
    PairUnsupportedError,
    PairInvalidError,
)


def _fail(message: str) -> None:
    sys.stderr.write(f"storager: {message}\n")
    sys.stderr.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        _fail(str(exc))
        return EXIT_USAGE
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    show_progress = args.progress if getattr(args, "progress", None) is not None else None
    if show_progress is None:
        show_progress = getattr(args, "command", "") == "cp" and sys.stderr.isatty()
    try:
        trees = TreeFile.read(args.config) if getattr(args, "config", None) else None
        with Stores(trees=trees) as stores:
            ctx = Context(
                stores=stores,
                stdout=sys.stdout,
                stdin=sys.stdin.buffer,
                progress=Progress(sys.stderr) if show_progress else None,
            )
            args.func(args, ctx)
    except UsageError as exc:
        _fail(str(exc))
        return EXIT_USAGE
    except _USAGE_ERRORS as exc:
        _fail(str(exc))
        return EXIT_USAGE
    except StorageError as exc:
        _fail(str(exc))
        return EXIT_FAILED
    except KeyboardInterrupt:
        _fail("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_FAILED
    except OSError as exc:  # stdin or stdout failed, not a store
        _fail(f"{args.command}: {exc.strerror or exc}")
        return EXIT_FAILED
    return EXIT_OK


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
