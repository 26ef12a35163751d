"""The ``storager`` command line (also ``python -m storager``).

Commands::

    storager ls [-l] [-r] [--json] URL     list a directory, or show one object
    storager stat [--json] URL             print an object's metadata
    storager cat [--offset N] [--size N] URL   stream an object (or a range) to stdout
    storager cp [-r] [-j N] [--progress] [--json] SRC DST   copy, N objects at once
    storager mv [-r] [-j N] SRC DST        move (a rename where the store can)
    storager sync [-j N] [--delete] [--dry-run] [--checksum] [--exclude GLOB] SRC DST
    storager rm [-r] URL                   delete an object, or a whole directory
    storager du [--json] URL               objects and bytes under URL
    storager doctor URL                    config, credential source, capability, round trip
    storager bench URL                     PUT/GET/HEAD ops/s and large-object MB/s
    storager serve ...                     the S3 gateway (docs/gateway.md)

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
    1: an operation failed (a StorageError: missing object, permission denied...), or
       some objects of a cp -r, mv -r or sync failed (each is listed; the rest was done),
       or doctor's round trip failed.
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
from storager.cli._commands import Context, PartialFailure, UsageError
from storager.cli._parser import build_parser
from storager.cli._urls import Location, Stores, split_url

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
    show_progress = getattr(args, "progress", None)
    if show_progress is None:
        # Live progress by default only for a person watching: stdout and stderr both
        # terminals (so `storager cp -r ... > log` or --json stays quiet).
        show_progress = (
            hasattr(args, "progress")
            and not getattr(args, "json", False)
            and _isatty(sys.stdout)
            and _isatty(sys.stderr)
        )
    try:
        trees = None
        if getattr(args, "config", None):
            from storager.tree import TreeFile  # only with --config: it loads the combinators

            trees = TreeFile.read(args.config)
        with Stores(trees=trees) as stores:
            ctx = Context(
                stores=stores,
                stdout=sys.stdout,
                stdin=sys.stdin.buffer,
                stderr=sys.stderr,
                show_progress=bool(show_progress),
            )
            args.func(args, ctx)
    except PartialFailure as exc:
        for name, message in exc.failures:
            _fail(f"{name}: {message}")
        for note in exc.notes:
            _fail(note)
        _fail(str(exc))
        return EXIT_FAILED
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


def _isatty(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # closed
        return False


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
